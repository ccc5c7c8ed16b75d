"""Plugin path resolution, loading, hot reload and the plugin process environment (CONTRACT §1.1, §1.2)."""

from __future__ import annotations

import builtins
import os
import shutil
import sys
from pathlib import Path

import pytest

from lakeflux.engine import api
from lakeflux.engine.plugin import (
    LoadedPlugin,
    PluginError,
    install_plugin_builtins,
    prepare_plugin_environment,
    resolve_plugin_path,
    venv_site_packages,
)
from lakeflux.errors import Invalid, NotFound
from lakeflux.lineprotocol import builder

PLUGINS = Path(__file__).parent / "plugins"


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    """A private copy of the test plugins, safe to edit."""
    target = tmp_path / "plugins"
    shutil.copytree(PLUGINS, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def _touch(path: Path, seconds_later: int = 10) -> None:
    """Move the mtime forward explicitly instead of sleeping."""
    st = path.stat()
    later = st.st_mtime_ns + seconds_later * 1_000_000_000
    os.utime(path, ns=(later, later))


def _rewrite(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))
    _touch(path)


# -- resolve_plugin_path ---------------------------------------------------------------------


def test_resolves_files_and_directories(plugin_dir: Path) -> None:
    assert resolve_plugin_path(plugin_dir, "counter.py") == (plugin_dir / "counter.py").resolve()
    assert resolve_plugin_path(plugin_dir, "greeter_pkg") == (plugin_dir / "greeter_pkg").resolve()
    assert resolve_plugin_path(plugin_dir, "./greeter_pkg/greeting.py").name == "greeting.py"


@pytest.mark.parametrize(
    "name",
    [
        "../counter.py",
        "greeter_pkg/../../x.py",
        "..",
        "/etc/passwd",
        "\\windows\\x.py",
        "C:\\x.py",
        "c:x.py",
        "a\\..\\..\\b",
    ],
)
def test_traversal_is_refused(plugin_dir: Path, name: str) -> None:
    with pytest.raises(Invalid) as info:
        resolve_plugin_path(plugin_dir, name)
    assert info.value.message == f"Path traversal detected: {name}"


def test_symlinks_escaping_the_dir_are_traversal(plugin_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text("def process_writes(a, b, c=None): pass\n")
    (plugin_dir / "link.py").symlink_to(outside)
    (plugin_dir / "linkdir").symlink_to(tmp_path)
    (plugin_dir / "inside.py").symlink_to(plugin_dir / "counter.py")
    with pytest.raises(Invalid, match=r"^Path traversal detected: link.py$"):
        resolve_plugin_path(plugin_dir, "link.py")
    with pytest.raises(Invalid, match=r"^Path traversal detected: linkdir/outside.py$"):
        resolve_plugin_path(plugin_dir, "linkdir/outside.py")
    assert resolve_plugin_path(plugin_dir, "inside.py") == (plugin_dir / "counter.py").resolve()


def test_missing_plugin_and_missing_dir(plugin_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFound) as info:
        resolve_plugin_path(plugin_dir, "nope.py")
    assert info.value.message == "Plugin not found: nope.py"
    with pytest.raises(NotFound):
        resolve_plugin_path(plugin_dir, "")
    with pytest.raises(Invalid) as no_dir:
        resolve_plugin_path(None, "counter.py")
    assert no_dir.value.message == "Node not configured with plugin directory"
    (plugin_dir / "not_a_package").mkdir()
    with pytest.raises(Invalid, match="has no __init__.py"):
        resolve_plugin_path(plugin_dir, "not_a_package")


# -- single-file plugins ---------------------------------------------------------------------


def test_globals_persist_between_calls_and_builtins_exist_at_import(plugin_dir: Path) -> None:
    plugin = LoadedPlugin(plugin_dir / "counter.py", "db1/t1")
    process_writes = plugin.entry_point("process_writes")
    assert [process_writes(None, [], None) for _ in range(3)] == [1, 2, 3]
    assert plugin.entry_point("process_writes")(None, [], None) == 4
    module = plugin.module()
    assert module.IMPORT_LINE == f'loaded name="{plugin.module_name}"'
    assert module.CAUGHT is api.QueryError
    assert module.__file__ == str(plugin_dir / "counter.py")
    assert module.__name__ == plugin.module_name
    assert plugin.module_name.startswith("_lakeflux_plugin_")


def test_triggers_never_share_a_namespace(plugin_dir: Path) -> None:
    first = LoadedPlugin(plugin_dir / "counter.py", "db1/t1")
    second = LoadedPlugin(plugin_dir / "counter.py", "db1/t1")
    first.entry_point("process_writes")(None, [], None)
    first.entry_point("process_writes")(None, [], None)
    assert second.entry_point("process_writes")(None, [], None) == 1
    assert first.module_name != second.module_name
    assert first.module() is not second.module()


def test_reloads_when_mtime_changes_and_only_then(plugin_dir: Path) -> None:
    path = plugin_dir / "counter.py"
    plugin = LoadedPlugin(path, "db1/t1")
    plugin.entry_point("process_writes")(None, [], None)
    before = plugin.module()
    assert plugin.module() is before  # unchanged source: same module, globals kept
    _rewrite(path, '"loaded"', '"reload"')  # same length: only the mtime tells
    after = plugin.module()
    assert after is not before
    assert after.IMPORT_LINE.startswith("reload ")
    assert plugin.entry_point("process_writes")(None, [], None) == 1  # fresh globals after reload


def test_missing_entry_points_name_the_expected_signature(plugin_dir: Path) -> None:
    plugin = LoadedPlugin(plugin_dir / "no_entry_points.py", "db1/t1")
    expected = {
        "process_writes": "process_writes(influxdb3_local, table_batches, args=None)",
        "process_scheduled_call": "process_scheduled_call(influxdb3_local, call_time, args=None)",
        "process_request": (
            "process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None)"
        ),
    }
    for name, signature in expected.items():
        with pytest.raises(PluginError) as info:
            plugin.entry_point(name)
        assert (
            str(info.value)
            == f"the {name} function is not present in the plugin. Should be defined as: {signature}"
        )


def test_entry_point_is_looked_up_per_call(plugin_dir: Path) -> None:
    path = plugin_dir / "no_entry_points.py"
    plugin = LoadedPlugin(path, "db1/t1")
    with pytest.raises(PluginError):
        plugin.entry_point("process_scheduled_call")
    path.write_text(
        "def process_scheduled_call(influxdb3_local, call_time, args=None):\n    return call_time\n"
    )
    _touch(path)
    assert plugin.entry_point("process_scheduled_call")(None, 42, None) == 42


def test_syntax_error_names_file_and_line(plugin_dir: Path) -> None:
    path = plugin_dir / "broken.py"
    path.write_text("x = 1\n\ndef process_writes(influxdb3_local, table_batches, args=None)\n    pass\n")
    plugin = LoadedPlugin(path, "db1/t1")
    with pytest.raises(PluginError) as info:
        plugin.entry_point("process_writes")
    message = str(info.value)
    assert message.startswith(f"syntax error in plugin {path}, line 3: ")
    assert "def process_writes" in message
    assert plugin.module_name not in sys.modules


def test_import_time_errors_name_file_and_line_and_are_retried(plugin_dir: Path) -> None:
    path = plugin_dir / "needs_package.py"
    path.write_text(
        "import os\nimport lakeflux_no_such_package\n\ndef process_writes(a, b, c=None):\n    return 1\n"
    )
    plugin = LoadedPlugin(path, "db1/t1")
    with pytest.raises(PluginError) as info:
        plugin.entry_point("process_writes")
    message = str(info.value)
    assert f"({path}, line 2)" in message
    assert "ModuleNotFoundError: No module named 'lakeflux_no_such_package'" in message
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    # A failed load is not remembered: once the package "is installed", the next call loads.
    (plugin_dir / "lakeflux_no_such_package.py").write_text("")
    sys.path.insert(0, str(plugin_dir))
    try:
        assert plugin.entry_point("process_writes")(None, [], None) == 1
    finally:
        sys.path.remove(str(plugin_dir))
        sys.modules.pop("lakeflux_no_such_package", None)


def test_deleted_plugin_is_not_found(plugin_dir: Path) -> None:
    path = plugin_dir / "counter.py"
    plugin = LoadedPlugin(path, "db1/t1")
    plugin.module()
    path.unlink()
    with pytest.raises(NotFound, match="Plugin not found"):
        plugin.entry_point("process_writes")


def test_dataclasses_work_in_single_file_plugins(plugin_dir: Path) -> None:
    plugin = LoadedPlugin(plugin_dir / "with_dataclass.py", "db1/t1")
    point = plugin.entry_point("process_scheduled_call")(None, None, None)
    assert (point.x, point.y, point.kind) == (3, 0, "point")


def test_close_forgets_the_module(plugin_dir: Path) -> None:
    plugin = LoadedPlugin(plugin_dir / "counter.py", "db1/t1")
    plugin.module()
    assert plugin.module_name in sys.modules
    plugin.close()
    assert plugin.module_name not in sys.modules


# -- directory plugins -----------------------------------------------------------------------


def test_directory_plugin_imports_as_a_package(plugin_dir: Path) -> None:
    plugin = LoadedPlugin(plugin_dir / "greeter_pkg", "db1/t1")
    process_request = plugin.entry_point("process_request")
    assert process_request(None, {"name": "ann"}, {}, b"", None) == "hello ann"
    assert f"{plugin.module_name}.greeting" in sys.modules
    assert plugin.module().__path__ == [str(plugin_dir / "greeter_pkg")]
    plugin.close()
    assert f"{plugin.module_name}.greeting" not in sys.modules


def test_directory_plugin_reloads_when_a_submodule_changes(plugin_dir: Path) -> None:
    plugin = LoadedPlugin(plugin_dir / "greeter_pkg", "db1/t1")
    plugin.entry_point("process_request")(None, {}, {}, b"", None)
    first = plugin.module()
    assert plugin.module() is first
    _rewrite(plugin_dir / "greeter_pkg" / "greeting.py", '"hello"', '"howdy"')
    assert plugin.entry_point("process_request")(None, {}, {}, b"", None) == "howdy world"
    assert plugin.module() is not first
    assert plugin.module().instances == [1]  # package globals start fresh after a reload


def test_directory_plugin_notices_new_files(plugin_dir: Path) -> None:
    package = plugin_dir / "greeter_pkg"
    plugin = LoadedPlugin(package, "db1/t1")
    first = plugin.module()
    (package / "extra.py").write_text("VALUE = 7\n")
    _rewrite(
        package / "__init__.py",
        "from .greeting import greet\n",
        "from .greeting import greet\nfrom .extra import VALUE\n",
    )
    assert plugin.module() is not first
    assert plugin.module().VALUE == 7


def test_directory_plugins_of_two_triggers_are_separate(plugin_dir: Path) -> None:
    first = LoadedPlugin(plugin_dir / "greeter_pkg", "db1/t1")
    second = LoadedPlugin(plugin_dir / "greeter_pkg", "db1/t2")
    first.entry_point("process_request")(None, {}, {}, b"", None)
    assert first.module().instances == [1]
    assert second.module().instances == []
    assert first.module().greet is not second.module().greet


# -- process environment ---------------------------------------------------------------------


def test_builtins_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "LineBuilder",
        "InfluxDBError",
        "InvalidMeasurementError",
        "InvalidKeyError",
        "InvalidLineError",
        "QueryError",
    ):
        monkeypatch.delattr(builtins, name, raising=False)
    install_plugin_builtins()
    assert builtins.LineBuilder is builder.LineBuilder  # type: ignore[attr-defined]
    assert builtins.InvalidKeyError is builder.InvalidKeyError  # type: ignore[attr-defined]
    assert builtins.QueryError is api.QueryError  # type: ignore[attr-defined]


def test_prepare_plugin_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    env = {"PATH": "/usr/bin:/bin", "PLUGIN_DIR": "/already/set"}
    venv = prepare_plugin_environment(tmp_path, None, environ=env)
    assert venv == (tmp_path / ".venv").resolve()
    assert env["INFLUXDB3_PLUGIN_DIR"] == env["LAKEFLUX_PLUGIN_DIR"] == str(tmp_path.resolve())
    assert env["PLUGIN_DIR"] == "/already/set"
    assert env["VIRTUAL_ENV"] == str(venv)
    assert env["PATH"] == f"{venv}/bin:/usr/bin:/bin"
    assert str(venv_site_packages(venv)) in sys.path
    # Calling again keeps one copy of each entry.
    prepare_plugin_environment(tmp_path, None, environ=env)
    assert env["PATH"].split(":").count(f"{venv}/bin") == 1
    assert sys.path.count(str(venv_site_packages(venv))) == 1


def test_prepare_plugin_environment_sets_plugin_dir_when_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    env: dict[str, str] = {}
    custom_venv = tmp_path / "venv"
    assert prepare_plugin_environment(tmp_path / "plugins", custom_venv, environ=env) == custom_venv.resolve()
    assert env["PLUGIN_DIR"] == str((tmp_path / "plugins").resolve())
    assert env["VIRTUAL_ENV"] == str(custom_venv.resolve())
    assert prepare_plugin_environment(None, None, environ={}) is None


def test_packages_installed_into_the_venv_import_on_the_next_call(
    tmp_path: Path, plugin_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    venv = prepare_plugin_environment(plugin_dir, None, environ={})
    assert venv is not None
    path = plugin_dir / "uses_pkg.py"
    path.write_text(
        "import lakeflux_fake_pkg\n\ndef process_writes(a, b, c=None):\n    return lakeflux_fake_pkg.X\n"
    )
    plugin = LoadedPlugin(path, "db1/t1")
    with pytest.raises(PluginError):
        plugin.entry_point("process_writes")
    site_packages = venv_site_packages(venv)
    site_packages.mkdir(parents=True)
    (site_packages / "lakeflux_fake_pkg.py").write_text("X = 5\n")
    try:
        assert plugin.entry_point("process_writes")(None, [], None) == 5
    finally:
        sys.modules.pop("lakeflux_fake_pkg", None)
