"""create / delete / enable / disable / update / install / test: the configuration commands.

Each command resolves the shared client flags, sends one or a few requests per CONTRACT §4.5-4.6, and
prints a one-line confirmation (or the server's JSON where that is the result).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from .args import (
    parse_error_behavior,
    parse_fields,
    parse_hard_delete,
    parse_kv_list,
    parse_name_list,
    parse_retention,
    validate_trigger_spec,
)
from .client import Client, ParamValue
from .options import DatabaseOpt, HostOpt, TlsCaOpt, TlsNoVerifyOpt, TokenOpt, connect, resolve_database
from .output import CliFailure, info, write_result
from .plugins import read_plugin, upload_names

TRIGGER_ROUTE = "/api/v3/configure/processing_engine_trigger"

create_app = typer.Typer(help="Create databases, tables, triggers and tokens", no_args_is_help=True)
delete_app = typer.Typer(help="Delete databases, tables, triggers and tokens", no_args_is_help=True)
enable_app = typer.Typer(help="Enable a trigger", no_args_is_help=True)
disable_app = typer.Typer(help="Disable a trigger", no_args_is_help=True)
update_app = typer.Typer(help="Change a database's retention or a trigger in place", no_args_is_help=True)
install_app = typer.Typer(help="Install Python packages into the plugin environment", no_args_is_help=True)
test_app = typer.Typer(help="Dry-run a plugin on the server", no_args_is_help=True)

YesOpt = Annotated[bool, typer.Option("-y", "--yes", help="Do not ask for confirmation")]
HardDeleteOpt = Annotated[
    str | None, typer.Option("--hard-delete", help="When to remove the data: never | now | default | RFC 3339 time")
]
TriggerArgsOpt = Annotated[
    str | None, typer.Option("--trigger-arguments", help="Plugin arguments as key=value,key2=value2")
]


def confirm(question: str, yes: bool) -> None:
    """Ask before a destructive request unless `-y` was given; anything but yes cancels."""
    if yes:
        return
    answer = typer.prompt(f"{question} Enter 'yes' to confirm", default="", show_default=False)
    if answer.strip().lower() not in ("yes", "y"):
        raise CliFailure("cancelled")


# --- create -----------------------------------------------------------------------------------------


@create_app.command("database")
def create_database(
    name: Annotated[str, typer.Argument(help="Database name")],
    retention_period: Annotated[
        str | None, typer.Option("--retention-period", "-r", help="Keep data this long, e.g. 30d")
    ] = None,
    host: HostOpt = None,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_no_verify: TlsNoVerifyOpt = False,
) -> None:
    """Create a database."""
    body: dict[str, Any] = {"db": name}
    if retention_period is not None:
        body["retention_period"] = parse_retention(retention_period)
    connect(host, token, tls_ca, tls_no_verify).request("POST", "/api/v3/configure/database", json_body=body)
    info(f'Database "{name}" created successfully')


@create_app.command("table")
def create_table(
    name: Annotated[str, typer.Argument(help="Table name")],
    database: DatabaseOpt = None,
    tags: Annotated[str | None, typer.Option("--tags", help="Tag columns: a,b,c")] = None,
    fields: Annotated[str | None, typer.Option("-f", "--fields", help="Field columns: name:type,...")] = None,
    host: HostOpt = None,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_no_verify: TlsNoVerifyOpt = False,
) -> None:
    """Create a table with tag and field columns (types utf8, int64, uint64, float64, bool)."""
    db = resolve_database(database)
    body = {"db": db, "table": name, "tags": parse_name_list(tags), "fields": parse_fields(fields)}
    connect(host, token, tls_ca, tls_no_verify).request("POST", "/api/v3/configure/table", json_body=body)
    info(f'Table "{db}"."{name}" created successfully')


@create_app.command("trigger")
def create_trigger(
    name: Annotated[str, typer.Argument(help="Trigger name")],
    database: DatabaseOpt = None,
    trigger_spec: Annotated[str, typer.Option(
        "--trigger-spec", help="table:<T> | all_tables | every:<DURATION> | cron:<EXPR> | request:<PATH>")] = ...,  # type: ignore[assignment]
    path: Annotated[str, typer.Option(
        "-p", "--path", "--plugin-filename", help="Plugin file or directory (relative to the plugin dir)")] = ...,  # type: ignore[assignment]
    trigger_arguments: TriggerArgsOpt = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled")] = False,
    run_asynchronous: Annotated[bool, typer.Option("--run-asynchronous", help="Allow concurrent calls")] = False,
    error_behavior: Annotated[str, typer.Option("--error-behavior", help="log | retry | disable")] = "log",
    upload: Annotated[bool, typer.Option("--upload", help="Upload the local plugin at --path first")] = False,
    host: HostOpt = None,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_no_verify: TlsNoVerifyOpt = False,
) -> None:
    """Create a processing-engine trigger."""
    db = resolve_database(database)
    validate_trigger_spec(trigger_spec)
    arguments = parse_kv_list(trigger_arguments)
    behavior = parse_error_behavior(error_behavior)
    client = connect(host, token, tls_ca, tls_no_verify)
    plugin_filename = upload_plugin(client, Path(path)) if upload else path
    body: dict[str, Any] = {
        "db": db,
        "plugin_filename": plugin_filename,
        "trigger_name": name,
        "trigger_specification": trigger_spec,
        "trigger_settings": {"run_async": run_asynchronous, "error_behavior": behavior},
        "disabled": disabled,
    }
    if arguments:
        body["trigger_arguments"] = arguments
    client.request("POST", TRIGGER_ROUTE, json_body=body)
    info(f'Trigger "{name}" created successfully')


def upload_plugin(client: Client, path: Path) -> str:
    """POST each file of a local plugin to /api/v3/plugins/files; return the server-side plugin name."""
    plugin_filename, uploads = upload_names(path, read_plugin(path))
    for plugin_name, content in uploads:
        client.request("POST", "/api/v3/plugins/files", json_body={"plugin_name": plugin_name, "content": content})
    return plugin_filename


@create_app.command("token")
def create_token(
    admin: Annotated[bool, typer.Option("--admin", help="Create the admin token (the only kind supported)")] = False,
    regenerate: Annotated[bool, typer.Option("--regenerate", help="Replace the existing admin token")] = False,
    fmt: Annotated[str, typer.Option("--format", help="text | json")] = "text",
    host: HostOpt = None,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_no_verify: TlsNoVerifyOpt = False,
) -> None:
    """Create (or regenerate) the admin token and print it once."""
    if not admin:
        raise CliFailure("only admin tokens are supported: pass --admin", code=2)
    if fmt not in ("text", "json"):
        raise CliFailure(f"invalid --format {fmt!r}: expected text or json", code=2)
    route = "/api/v3/configure/token/admin" + ("/regenerate" if regenerate else "")
    response = connect(host, token, tls_ca, tls_no_verify).request("POST", route, json_body={})
    if fmt == "json":
        write_result(response.body, None)
        return
    payload = response.json() or {}
    info("New admin token created successfully!" if not regenerate else "Admin token regenerated successfully!")
    info(f"\nToken: {payload.get('token', '')}\n")
    info("Store it safely: it is not shown again. Use it with --token or LAKEFLUX_AUTH_TOKEN.")


# --- delete -----------------------------------------------------------------------------------------


@delete_app.command("database")
def delete_database(
    name: Annotated[str, typer.Argument(help="Database name")],
    hard_delete: HardDeleteOpt = None,
    yes: YesOpt = False,
    host: HostOpt = None,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_no_verify: TlsNoVerifyOpt = False,
) -> None:
    """Delete a database."""
    params = {"db": name, "hard_delete_at": parse_hard_delete(hard_delete)}
    client = connect(host, token, tls_ca, tls_no_verify)
    confirm(f'Are you sure you want to delete database "{name}"?', yes)
    client.request("DELETE", "/api/v3/configure/database", params=params)
    info(f'Database "{name}" deleted successfully')


@delete_app.command("table")
def delete_table(
    name: Annotated[str, typer.Argument(help="Table name")],
    database: DatabaseOpt = None,
    hard_delete: HardDeleteOpt = None,
    yes: YesOpt = False,
    host: HostOpt = None,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_no_verify: TlsNoVerifyOpt = False,
) -> None:
    """Delete a table."""
    db = resolve_database(database)
    params = {"db": db, "table": name, "hard_delete_at": parse_hard_delete(hard_delete)}
    client = connect(host, token, tls_ca, tls_no_verify)
    confirm(f'Are you sure you want to delete table "{db}"."{name}"?', yes)
    client.request("DELETE", "/api/v3/configure/table", params=params)
    info(f'Table "{db}"."{name}" deleted successfully')


@delete_app.command("trigger")
def delete_trigger(
    name: Annotated[str, typer.Argument(help="Trigger name")],
    database: DatabaseOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Delete even if it is enabled")] = False,
    host: HostOpt = None,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_no_verify: TlsNoVerifyOpt = False,
) -> None:
    """Delete a trigger (an enabled one needs --force)."""
    db = resolve_database(database)
    params: dict[str, ParamValue] = {"db": db, "trigger_name": name, "force": force}
    connect(host, token, tls_ca, tls_no_verify).request("DELETE", TRIGGER_ROUTE, params=params)
    info(f'Trigger "{name}" deleted successfully')


@delete_app.command("token")
def delete_token(
    token_name: Annotated[str, typer.Option("--token-name", help="Token to delete")] = "_admin",
    yes: YesOpt = False,
    host: HostOpt = None,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_no_verify: TlsNoVerifyOpt = False,
) -> None:
    """Delete a token (by default the admin token `_admin`)."""
    client = connect(host, token, tls_ca, tls_no_verify)
    confirm(f'Are you sure you want to delete token "{token_name}"?', yes)
    client.request("DELETE", "/api/v3/configure/token", params={"token_name": token_name})
    info(f'Token "{token_name}" deleted successfully')


# --- enable / disable -------------------------------------------------------------------------------


def _toggle_trigger(action: str, name: str, database: str | None, client_flags: tuple[Any, ...]) -> None:
    db = resolve_database(database)
    connect(*client_flags).request("POST", f"{TRIGGER_ROUTE}/{action}", params={"db": db, "trigger_name": name})
    info(f'Trigger "{name}" {action}d successfully')


@enable_app.command("trigger")
def enable_trigger(
    name: Annotated[str, typer.Argument(help="Trigger name")],
    database: DatabaseOpt = None,
    host: HostOpt = None,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_no_verify: TlsNoVerifyOpt = False,
) -> None:
    """Enable a trigger."""
    _toggle_trigger("enable", name, database, (host, token, tls_ca, tls_no_verify))


@disable_app.command("trigger")
def disable_trigger(
    name: Annotated[str, typer.Argument(help="Trigger name")],
    database: DatabaseOpt = None,
    host: HostOpt = None,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_no_verify: TlsNoVerifyOpt = False,
) -> None:
    """Disable a trigger."""
    _toggle_trigger("disable", name, database, (host, token, tls_ca, tls_no_verify))


# --- update -----------------------------------------------------------------------------------------


@update_app.command("database")
def update_database(
    name: Annotated[str | None, typer.Argument(help="Database name (or -d)")] = None,
    database: DatabaseOpt = None,
    retention_period: Annotated[
        str, typer.Option("-r", "--retention-period", help="New retention, e.g. 30d, or none to clear")
    ] = ...,  # type: ignore[assignment]
    host: HostOpt = None,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_no_verify: TlsNoVerifyOpt = False,
) -> None:
    """Change a database's retention period."""
    db = resolve_database(name or database)
    body = {"db": db, "retention_period": parse_retention(retention_period)}
    connect(host, token, tls_ca, tls_no_verify).request("PUT", "/api/v3/configure/database", json_body=body)
    info(f'Database "{db}" updated successfully')


@update_app.command("trigger")
def update_trigger(
    database: DatabaseOpt = None,
    trigger_name: Annotated[str, typer.Option("-t", "--trigger-name", help="Trigger to update")] = ...,  # type: ignore[assignment]
    path: Annotated[
        Path | None, typer.Option("-p", "--path", help="Local plugin file or directory whose code replaces the trigger's")
    ] = None,
    trigger_spec: Annotated[str | None, typer.Option("--trigger-spec", help="New trigger spec")] = None,
    trigger_arguments: TriggerArgsOpt = None,
    error_behavior: Annotated[str | None, typer.Option("--error-behavior", help="log | retry | disable")] = None,
    run_asynchronous: Annotated[
        bool | None, typer.Option("--run-asynchronous/--no-run-asynchronous", help="Allow concurrent calls")
    ] = None,
    host: HostOpt = None,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_no_verify: TlsNoVerifyOpt = False,
) -> None:
    """Update a trigger in place: its plugin code and/or its settings (omitted ones are kept)."""
    db = resolve_database(database)
    changes = trigger_changes(trigger_spec, trigger_arguments, error_behavior, run_asynchronous)
    if path is None and not changes:
        raise CliFailure("nothing to update: pass -p and/or --trigger-spec, --trigger-arguments, "
                         "--error-behavior, --[no-]run-asynchronous", code=2)
    client = connect(host, token, tls_ca, tls_no_verify)
    if path is not None:
        replace_plugin_code(client, trigger_name, path)
    if changes:
        client.request("PUT", TRIGGER_ROUTE, json_body={"db": db, "trigger_name": trigger_name, **changes})
    info(f'Trigger "{trigger_name}" updated successfully')


def trigger_changes(
    spec: str | None, arguments: str | None, error_behavior: str | None, run_async: bool | None
) -> dict[str, Any]:
    """The PUT body fields for the settings given; `trigger_settings` holds only the keys given."""
    changes: dict[str, Any] = {}
    if spec is not None:
        changes["trigger_specification"] = validate_trigger_spec(spec)
    if arguments is not None:
        changes["trigger_arguments"] = parse_kv_list(arguments)
    settings: dict[str, Any] = {}
    if error_behavior is not None:
        settings["error_behavior"] = parse_error_behavior(error_behavior)
    if run_async is not None:
        settings["run_async"] = run_async
    if settings:
        changes["trigger_settings"] = settings
    return changes


def replace_plugin_code(client: Client, trigger_name: str, path: Path) -> None:
    """PUT a file's code to plugins/files, or a directory's files to plugins/directory (atomic swap)."""
    files = read_plugin(path)
    if path.is_file():
        body: dict[str, Any] = {"plugin_name": trigger_name, "content": files[0].content}
        client.request("PUT", "/api/v3/plugins/files", json_body=body)
        return
    body = {
        "plugin_name": trigger_name,
        "files": [{"relative_path": file.relative_path, "content": file.content} for file in files],
    }
    client.request("PUT", "/api/v3/plugins/directory", json_body=body)


# --- install ----------------------------------------------------------------------------------------


@install_app.command("package")
def install_package(
    packages: Annotated[list[str] | None, typer.Argument(help="Packages (pip requirement specifiers)")] = None,
    requirements: Annotated[
        str | None, typer.Option("-r", "--requirements", help="requirements.txt path on the server")
    ] = None,
    host: HostOpt = None,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_no_verify: TlsNoVerifyOpt = False,
) -> None:
    """Install packages into the server's plugin virtual environment."""
    if not packages and requirements is None:
        raise CliFailure("give package names or -r/--requirements FILE", code=2)
    client = connect(host, token, tls_ca, tls_no_verify)
    base = "/api/v3/configure/plugin_environment"
    if packages:
        client.request("POST", f"{base}/install_packages", json_body={"packages": packages})
    if requirements is not None:
        client.request("POST", f"{base}/install_requirements", json_body={"requirements_location": requirements})
    info("packages installed successfully")


# --- test -------------------------------------------------------------------------------------------

InputArgsOpt = Annotated[str | None, typer.Option("--input-arguments", help="Plugin arguments: k=v,k2=v2")]
CacheNameOpt = Annotated[str | None, typer.Option("--cache-name", help="Cache namespace [server default _shared_test]")]


def print_test_result(body: bytes) -> None:
    """Print the dry-run result as indented JSON (the server's bytes if they are not JSON)."""
    try:
        text = json.dumps(json.loads(body), indent=2)
    except ValueError:
        write_result(body, None)
        return
    info(text)


@test_app.command("wal_plugin")
def test_wal_plugin(
    filename: Annotated[str, typer.Argument(help="Plugin file, relative to the server's plugin dir")],
    database: DatabaseOpt = None,
    lp: Annotated[str | None, typer.Option("--lp", help="Line protocol to feed the plugin")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Read the line protocol from this file")] = None,
    input_arguments: InputArgsOpt = None,
    cache_name: CacheNameOpt = None,
    host: HostOpt = None,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_no_verify: TlsNoVerifyOpt = False,
) -> None:
    """Run a WAL plugin once over the given line protocol; writes are captured, not applied."""
    db = resolve_database(database)
    if (lp is None) == (file is None):
        raise CliFailure("give the input either with --lp or with --file", code=2)
    input_lp = lp if lp is not None else _read_text(file)
    body: dict[str, Any] = {"filename": filename, "database": db, "input_lp": input_lp}
    body.update(_optional_test_fields(input_arguments, cache_name))
    response = connect(host, token, tls_ca, tls_no_verify).request("POST", "/api/v3/plugin_test/wal", json_body=body)
    print_test_result(response.body)


@test_app.command("schedule_plugin")
def test_schedule_plugin(
    filename: Annotated[str, typer.Argument(help="Plugin file, relative to the server's plugin dir")],
    database: DatabaseOpt = None,
    schedule: Annotated[
        str, typer.Option("--schedule", help="Cron expression (sec min hour dom month dow) that sets call_time")
    ] = "* * * * * *",
    input_arguments: InputArgsOpt = None,
    cache_name: CacheNameOpt = None,
    host: HostOpt = None,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_no_verify: TlsNoVerifyOpt = False,
) -> None:
    """Run a schedule plugin once now; writes are captured, not applied."""
    db = resolve_database(database)
    body: dict[str, Any] = {"filename": filename, "database": db, "schedule": schedule}
    body.update(_optional_test_fields(input_arguments, cache_name))
    response = connect(host, token, tls_ca, tls_no_verify).request(
        "POST", "/api/v3/plugin_test/schedule", json_body=body
    )
    print_test_result(response.body)


def _optional_test_fields(input_arguments: str | None, cache_name: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if input_arguments is not None:
        fields["input_arguments"] = parse_kv_list(input_arguments, "--input-arguments")
    if cache_name is not None:
        fields["cache_name"] = cache_name
    return fields


def _read_text(path: Path | None) -> str:
    assert path is not None
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliFailure(f"cannot read {path}: {exc.strerror}") from None
