"""The test kit's server processes never outlive the test process that started them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = """
import sys
from pathlib import Path
from lakeflux.testing.process import ServerProcess
srv = ServerProcess(Path(sys.argv[1]), "--without-auth").start()
print(srv.proc.pid, flush=True)
raise SystemExit(3)  # as a test that fails between start and stop
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child that nobody reaped yet is a zombie: dead for our purpose.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[1].split()[0] != "Z"


def test_a_server_left_running_is_killed_at_exit(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(data)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 3, out.stderr
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)
