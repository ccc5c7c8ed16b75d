"""The native scanner is built, and reads no byte outside its input on any body.

The memory-safety run compiles a second copy of `_scanner.c` with AddressSanitizer and
UndefinedBehaviorSanitizer into the test's temp dir and runs a fuzz corpus through it in a child
process (libasan preloaded: Python itself is not instrumented). Each body is handed over in a heap
buffer of exactly its size, so reading one byte past its end lands in ASan's red zone; any report
aborts the child. The corpus: truncated escapes, bodies ending inside a quote, NUL bytes, invalid
UTF-8, 1 MB lines, many keys, and random bytes from hypothesis.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import lakeflux.lineprotocol as lineprotocol
from lakeflux.lineprotocol import (
    _scanner,  # type: ignore[attr-defined]
    native,
)

SOURCE = Path(lineprotocol.__file__).with_name("_scanner.c")

CHILD = r'''
import importlib.util, sys
spec = importlib.util.spec_from_file_location("lakeflux.lineprotocol._scanner", sys.argv[1])
scanner = importlib.util.module_from_spec(spec)
spec.loader.exec_module(scanner)
sys.modules["lakeflux.lineprotocol._scanner"] = scanner

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st
from lakeflux.lineprotocol import parse, parse_exact
from lakeflux.lineprotocol import native
from lakeflux.model import Precision
assert native._scanner is scanner, "the sanitized copy must be the one under test"

def exact_buffer(raw):
    """The body in a heap block of exactly its size (bytes objects carry a trailing NUL)."""
    return np.frombuffer(raw, dtype=np.uint8).copy() if raw else np.empty(0, dtype=np.uint8)

def run(raw):
    for multiplier in (0, 1, 1000, 1000000000):
        result = scanner.scan(exact_buffer(raw), multiplier, 5)
        del result  # releases every exported array that was never imported
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return
    fast = parse(raw, precision=Precision.AUTO, default_time_ns=5)
    exact = parse_exact(raw, precision=Precision.AUTO, default_time_ns=5)
    assert [t.table.to_pylist() for t in fast.tables.values()] == [t.table.to_pylist() for t in exact.tables.values()]
    assert fast.errors == exact.errors

CORPUS = [
    b"", b"\n", b"\r", b"#", b"m", b"m ", b"m f", b"m f=", b"m f=1", b"m f=1 ", b"m f=1 1", b"m,", b"m,t", b"m,t=",
    b"m\\", b"m,t\\", b"m,t=a\\", b"m f\\", b"m,t=v f=1\\", b"m\\ ", b"m,t=\\,", b"m f=\"", b"m f=\"abc",
    b"m f=\"abc\n", b"m f=\"a\\", b"m f=\"a\\\"", b"m f=1,g=\"x\ny", b"m,t=a f=\"x\" 1\nm f=\"", b"m f=t", b"m f=tr",
    b"m f=1i", b"m f=-", b"m f=1e", b"m f=1.", b"m f=-9223372036854775808i", b"m f=18446744073709551616u",
    b"m\x00,t=\x00 f=1 1\n\x00", b"m f=1\x00", b"\x00", b"m f=\"\x00\"", b"\xff", b"m f=1 \xe2\x82", b"m,t=\xf0\x9f",
    b"m f=0.000000000000000000000000000001e-1", b"m f=1" + b"0" * 400, b"m f=1" + b"." + b"9" * 400,
    b"m f=1e" + b"9" * 30, b"m f=1 " + b"9" * 40, b"m f=1 -" + b"9" * 19,
    b"m," + b",".join(b"t%d=v" % i for i in range(600)) + b" f=1 1",
    b"m " + b",".join(b"f%d=%di" % (i, i) for i in range(600)) + b" 1",
    b"m,t=" + b"x" * 1_000_000 + b" f=1 1\n" + b"m f=\"" + b"y" * 1_000_000 + b"\" 2\n" + b"m" * 1_000_000,
    b"m f=\"" + b"z" * 70_000 + b"\" 1",
    b"\n".join([b"cpu,host=a,cpu=c f=1.5,g=2i,h=t,s=\"x y\" 1"] * 2000),
    b"\n".join(b"m%d,t=%d f%d=%d" % (i, i, i % 7, i) for i in range(5000)),
]
for raw in CORPUS:
    for cut in (len(raw), max(len(raw) - 1, 0), len(raw) // 2):
        run(raw[:cut])

@settings(max_examples=600, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(st.binary(max_size=300),
                 st.text(alphabet=st.sampled_from(list("m ,=\"\\\n\r\t#.-0123456789eEiutf\x00é")), max_size=200)
                 .map(lambda text: text.encode("utf-8"))))
def fuzz(raw):
    run(raw)

fuzz()
print("corpus clean")
'''


def test_the_extension_is_built_and_used() -> None:
    # A build that silently fell back to pure Python would make every speed figure meaningless.
    assert Path(_scanner.__file__).suffix in {".so", ".pyd"}
    assert lineprotocol.parse is native.parse


def test_no_out_of_bounds_access_on_the_fuzz_corpus(tmp_path: Path) -> None:
    gcc = shutil.which("gcc") or shutil.which("cc")
    assert gcc is not None, "a C compiler is needed to build the extension at all"
    libasan = subprocess.run([gcc, "-print-file-name=libasan.so"], capture_output=True, text=True,
                             check=True).stdout.strip()
    assert os.path.isabs(libasan), f"no libasan.so next to {gcc}"
    module = tmp_path / f"_scanner{sysconfig.get_config_var('EXT_SUFFIX')}"
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O1", "-g", "-std=gnu11", "-fno-omit-frame-pointer",
         "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
         f"-I{sysconfig.get_paths()['include']}", str(SOURCE), "-o", str(module)],
        check=True, capture_output=True,
    )
    script = tmp_path / "corpus.py"
    script.write_text(CHILD)
    env = {**os.environ, "LD_PRELOAD": libasan, "PYTHONMALLOC": "malloc",
           "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1", "UBSAN_OPTIONS": "print_stacktrace=1"}
    child = subprocess.run([sys.executable, str(script), str(module)], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stderr[-6000:]
    assert "corpus clean" in child.stdout
