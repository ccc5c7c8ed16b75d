"""Files a server keeps on the local machine for the local CLI: its admin-token file and a note per address.

Where the admin token goes follows the server's own state, so two servers never share (or overwrite) one:

- file store: `<data-dir>/admin-token` (`admin-token.<node>` for a node other than `node0`), beside the data;
- memory and S3 stores: `<state dir>/tokens/<store key>/<node>/admin-token`, the store key naming the store
  (`s3-<endpoint>-<bucket>[-<prefix>]`, or `memory-<host>-<port>`: a memory store lives as long as its process).

The state dir is `$LAKEFLUX_STATE_DIR`, else `$XDG_STATE_HOME/lakeflux`, else `~/.local/state/lakeflux`.
Every server with auth on also writes `<state dir>/servers/<port>.json` naming its token file, so the CLI
finds the token of whatever local server answers on the port it is given.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .config import Config, env

TOKEN_FILE_NAME = "admin-token"
DEFAULT_NODE = "node0"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def state_dir() -> Path:
    """The per-user directory for lakeflux's local files (see the module docstring)."""
    configured = env("STATE_DIR")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "lakeflux"


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("._") or "_"


def store_key(config: Config) -> str:
    """A file-name-safe name for the store a non-file server keeps its state in."""
    if config.object_store == "s3":
        endpoint = config.s3.endpoint or os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT")
        where = urlsplit(endpoint).netloc or endpoint if endpoint else "aws"
        parts = ["s3", where, config.s3.bucket or os.environ.get("AWS_BUCKET") or "_"]
        if config.s3.prefix:
            parts.append(config.s3.prefix)
        return _safe("-".join(parts))
    host, port = config.host_port
    return _safe(f"{config.object_store}-{host}-{port}")


def token_file(config: Config) -> Path:
    """Where the server with this config keeps its admin token for the local CLI. The nodes of a cluster share
    one (its catalog holds one set of tokens): named after the cluster instead of the node."""
    owner = config.cluster
    if config.object_store == "file":
        name = TOKEN_FILE_NAME if owner == DEFAULT_NODE else f"{TOKEN_FILE_NAME}.{_safe(owner)}"
        return config.data_dir / name
    return state_dir() / "tokens" / store_key(config) / _safe(owner) / TOKEN_FILE_NAME


def read_token_file(path: Path) -> str | None:
    """The token saved in `path`, or None when the file is missing, unreadable or empty.

    The file holds the bare token; a JSON object with a `token` key is accepted too.
    """
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if text.startswith("{"):
        try:
            value = json.loads(text).get("token")
        except (ValueError, AttributeError):
            return None
        return value if isinstance(value, str) and value else None
    return text or None


def owns_stale_token_file(config: Config) -> bool:
    """A memory store starts empty every time: a token file under its key is left by an earlier process
    on the same address, whose state is gone, so the new server may replace it."""
    return config.object_store == "memory"


@dataclass(frozen=True)
class ServerNote:
    """What `<state dir>/servers/<port>.json` says about the local server last started on that port."""

    url: str
    token_file: Path
    store: str
    node: str


def _note_path(port: int) -> Path:
    return state_dir() / "servers" / f"{port}.json"


def write_server_note(config: Config, port: int) -> Path:
    """Record (for the local CLI) which token file belongs to the server now listening on `port`."""
    host, _ = config.host_port
    where = str(config.data_dir.resolve()) if config.object_store == "file" else store_key(config)
    note = {"url": f"http://{host}:{port}", "token_file": str(token_file(config).resolve()),
            "store": f"{config.object_store}:{where}", "node": config.node_id}
    path = _note_path(port)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(note, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_server_note(port: int) -> ServerNote | None:
    """The note of the local server last started on `port`, or None when there is none (or it is unreadable)."""
    try:
        raw = json.loads(_note_path(port).read_text(encoding="utf-8"))
        return ServerNote(str(raw["url"]), Path(raw["token_file"]), str(raw["store"]), str(raw["node"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
