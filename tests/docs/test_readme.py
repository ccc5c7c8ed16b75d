"""The README's quick start, block by block, against a fresh real server: what a new user types first.

Every ```sh block of the "Quick start" section must have a check in CHECKS, keyed by the block's first line;
a new block fails here until it gets one. A check receives the block's output (the commands run with bash in
the directory where the server keeps ./data, the port and the venv's path filled in).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from lakeflux.config import DEFAULT_BIND
from lakeflux.testing.process import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Block:
    first_line: str
    text: str


def section_blocks(markdown: str, heading: str) -> list[Block]:
    """The ```sh blocks of the `## heading` section (up to the next `## ` heading)."""
    start = markdown.index(f"## {heading}\n")
    end = markdown.find("\n## ", start + 1)
    section = markdown[start:end if end != -1 else None]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return [Block(text.strip().splitlines()[0], text) for text in blocks]


@dataclass
class Run:
    """One quick-start session: the server the README's `make serve` starts, in a fresh directory."""

    work: Path
    server: ServerProcess

    def shell(self, text: str) -> str:
        text = text.replace("127.0.0.1:8181", f"127.0.0.1:{self.server.port}").replace(
            ".venv/bin/", f"{VENV_BIN}/")
        env = {k: v for k, v in os.environ.items()
               if not k.endswith(("_AUTH_TOKEN", "_HOST_URL", "_DB_DIR", "_DATABASE_NAME"))}
        env["LAKEFLUX_HOST_URL"] = self.server.url  # the CLI's default host is 127.0.0.1:8181
        result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", text], cwd=self.work, env=env,
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, (text, result.stdout, result.stderr)
        return result.stdout


def check_make_targets(run: Run, block: Block) -> None:
    # `make serve` runs the venv's `lakeflux serve` with the defaults: that is the server this test started
    # (on a free port instead of 8181, in a fresh directory instead of the checkout).
    recipe = re.search(r"^serve:.*\n\t(.+)$", (ROOT / "Makefile").read_text(), flags=re.M)
    assert recipe is not None and recipe.group(1).strip() == "$(BIN)/lakeflux serve"
    assert "127.0.0.1:8181" in block.text and DEFAULT_BIND == "127.0.0.1:8181"
    assert "data in ./data" in block.text and (run.work / "data" / "node0").is_dir()
    assert (run.work / "data" / "admin-token").read_text().startswith("apiv3_")
    assert "make test" in block.text  # the test suite itself: not run from inside it


def check_cli(run: Run, block: Block) -> None:
    out = run.shell(block.text).splitlines()
    assert out[0] == "success"
    header = next(i for i, line in enumerate(out) if "host" in line and "usage" in line)
    assert re.search(r"\|\s*a\s*\|.*12\.5", "\n".join(out[header:]))  # the pretty table shows the row
    assert json.loads(out[-1]) == [{"host": "a", "avg(cpu.usage)": 12.5}]


def check_curl(run: Run, block: Block) -> None:
    rows = [json.loads(line) for line in run.shell(block.text).splitlines() if line.strip()]
    # The CLI block wrote one point, this block another (both stamped with their ingest time).
    assert [(r["host"], r["usage"]) for r in rows] == [("a", 12.5), ("a", 12.5)]
    assert all("time" in r for r in rows)


CHECKS: dict[str, Callable[[Run, Block], None]] = {
    "make serve     # starts the server on 127.0.0.1:8181, data in ./data (file store, no other service)":
        check_make_targets,
    ".venv/bin/lakeflux write -d mydb 'cpu,host=a usage=12.5'": check_cli,
    "TOKEN=$(cat data/admin-token)": check_curl,
}


def test_every_quick_start_block_has_a_check() -> None:
    blocks = section_blocks(README.read_text(), "Quick start")
    assert blocks, "the README has no quick-start commands"
    missing = [b.first_line for b in blocks if b.first_line not in CHECKS]
    assert not missing, f"add a check to CHECKS for these README blocks: {missing}"


def test_the_quick_start_works_as_written(tmp_path: Path) -> None:
    work = tmp_path / "checkout"
    work.mkdir()
    with ServerProcess(None, port=free_port(), cwd=work) as server:
        run = Run(work, server)
        for block in section_blocks(README.read_text(), "Quick start"):
            CHECKS[block.first_line](run, block)
