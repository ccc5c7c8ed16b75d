"""Installing packages into the plugin venv with real pip, offline (CONTRACT §1.1, §4.5).

The package installed is built here: a directory with a pyproject.toml whose build backend lives in the
directory itself, so pip needs no index. `PIP_NO_INDEX=1` keeps every pip run off the network.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from runtime_support import create_trigger

from lakeflux.config import Config
from lakeflux.store.memory import MemoryStore
from lakeflux.testing.server import InProcessServer

PACKAGES = "/api/v3/configure/plugin_environment/install_packages"
REQUIREMENTS = "/api/v3/configure/plugin_environment/install_requirements"

# A PEP 517 backend that zips the module into a wheel: enough for pip, no setuptools needed.
BACKEND = '''
import base64, hashlib, os, zipfile

NAME, VERSION = "lakeflux_tinypkg", "1.0"
DIST = f"{NAME}-{VERSION}"


def _record_line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = {
        f"{NAME}.py": open(f"{NAME}.py", "rb").read(),
        f"{DIST}.dist-info/METADATA": f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n".encode(),
        f"{DIST}.dist-info/WHEEL": b"Wheel-Version: 1.0\\nGenerator: tiny\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }
    record = [_record_line(path, data) for path, data in files.items()] + [f"{DIST}.dist-info/RECORD,,"]
    name = f"{DIST}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
        wheel.writestr(f"{DIST}.dist-info/RECORD", "\\n".join(record) + "\\n")
    return name
'''

PYPROJECT = '''
[build-system]
requires = []
build-backend = "tiny_backend"
backend-path = ["."]

[project]
name = "lakeflux_tinypkg"
version = "1.0"
'''

PLUGIN = textwrap.dedent('''
    def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
        import lakeflux_tinypkg
        return {"value": lakeflux_tinypkg.VALUE}
''')


def make_package(root: Path) -> Path:
    source = root / "tinypkg"
    source.mkdir(parents=True)
    (source / "pyproject.toml").write_text(PYPROJECT)
    (source / "tiny_backend.py").write_text(BACKEND)
    (source / "lakeflux_tinypkg.py").write_text("VALUE = 42\n")
    return source


@pytest.fixture(scope="module")
def venv_dir(tmp_path_factory) -> Path:
    """One venv for the module: creating one (with pip) takes seconds."""
    return tmp_path_factory.mktemp("venv") / "plugin-venv"


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")


def server(tmp_path: Path, venv_dir: Path, **changes) -> InProcessServer:
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir(exist_ok=True)
    (plugin_dir / "uses_pkg.py").write_text(PLUGIN)
    config = Config(plugin_dir=plugin_dir, virtual_env=venv_dir, object_store="memory", without_auth=True,
                    data_dir=tmp_path / "data", wal_flush_interval=0.02).with_changes(**changes)
    return InProcessServer(config, store=MemoryStore())


def test_install_a_local_package_and_import_it_without_restart(tmp_path, venv_dir, offline):
    source = make_package(tmp_path)
    with server(tmp_path, venv_dir) as srv:
        assert srv.write("db", "m v=1").status == 204
        assert create_trigger(srv, "db", "t", "uses_pkg.py", "request:pkg").status == 200
        before = srv.request("GET", "/api/v3/engine/pkg")
        assert before.status == 500  # not installed yet: the plugin's ImportError
        reply = srv.request("POST", PACKAGES, {"packages": [str(source)]})
        assert reply.status == 200, reply.body
        assert (venv_dir / "bin" / "python").exists()
        after = srv.request("GET", "/api/v3/engine/pkg")
        assert after.status == 200, after.body
        assert after.json() == {"value": 42}


def test_pip_failure_is_500_with_pip_output(tmp_path, venv_dir, offline):
    with server(tmp_path, venv_dir) as srv:
        reply = srv.request("POST", PACKAGES, {"packages": ["lakeflux-no-such-package-xyz==9.9"]})
        assert reply.status == 500
        error = reply.json()["error"]
        assert error.startswith("installing packages failed (exit 1)")
        assert "lakeflux-no-such-package-xyz" in error  # pip's own words


def test_requirements_file(tmp_path, venv_dir, offline):
    source = make_package(tmp_path)
    good = tmp_path / "requirements.txt"
    good.write_text(f"{source}\n")
    bad = tmp_path / "bad.txt"
    bad.write_text("this is not a requirement ===\n")
    with server(tmp_path, venv_dir) as srv:
        assert srv.request("POST", REQUIREMENTS, {"requirements_location": str(good)}).status == 200
        failed = srv.request("POST", REQUIREMENTS, {"requirements_location": str(bad)})
        assert failed.status == 500
        assert "this is not a requirement" in failed.json()["error"]
        missing = srv.request("POST", REQUIREMENTS, {"requirements_location": str(tmp_path / "none.txt")})
        assert missing.status == 400


@pytest.mark.parametrize("body", [{"packages": []}, {"packages": "requests"}, {"packages": ["--index-url=x"]}])
def test_bad_package_lists_are_400(tmp_path, venv_dir, body):
    with server(tmp_path, venv_dir) as srv:
        assert srv.request("POST", PACKAGES, body).status == 400


def test_disabled_package_manager_is_403(tmp_path, venv_dir):
    with server(tmp_path, venv_dir, package_manager="disabled") as srv:
        reply = srv.request("POST", PACKAGES, {"packages": ["anything"]})
        assert reply.status == 403
        assert "disabled" in reply.json()["error"]
