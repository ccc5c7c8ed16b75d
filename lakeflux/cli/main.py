"""The `lakeflux` command: the typer app, mirroring the `influxdb3` command tree (CONTRACT §6).

Errors a user can act on (`CliFailure`, `ClientError`, bad flag values) are printed as one `Error:` line
on stderr with a non-zero exit code, never as a traceback.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from .args import UsageError
from .client import ClientError, describe_line_errors
from .lake import persist_command
from .manage import create_app, delete_app, disable_app, enable_app, install_app, test_app, update_app
from .output import CliFailure, error
from .query import query_command
from .serve import serve_command
from .show import show_app
from .write import write_command


class LakefluxGroup(TyperGroup):
    """The root group: turns expected failures from any subcommand into a message and an exit code."""

    def invoke(self, ctx: Any) -> Any:  # typer vendors click: its Context type is private
        try:
            return super().invoke(ctx)
        except CliFailure as failure:
            if failure.code != 0:
                error(failure.message)
            for line in failure.details:
                typer.echo(f"  {line}", err=True)
            raise typer.Exit(failure.code) from None
        except ClientError as failure:
            error(failure.message)
            for line in describe_line_errors(failure.data):
                typer.echo(f"  {line}", err=True)
            raise typer.Exit(1) from None
        except UsageError as failure:
            error(str(failure))
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=LakefluxGroup,
    name="lakeflux",
    help="lakeflux: an object-store-first time-series lakehouse speaking the InfluxDB 3 protocols.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
)

SERVE_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}

app.command("serve", context_settings=SERVE_CONTEXT)(serve_command)
app.command("write")(write_command)
app.command("w", hidden=True, help="Alias of write")(write_command)
app.command("query")(query_command)
app.command("q", hidden=True, help="Alias of query")(query_command)
app.command("persist")(persist_command)
app.add_typer(create_app, name="create")
app.add_typer(delete_app, name="delete")
app.add_typer(enable_app, name="enable")
app.add_typer(disable_app, name="disable")
app.add_typer(update_app, name="update")
app.add_typer(show_app, name="show")
app.add_typer(install_app, name="install")
app.add_typer(test_app, name="test")


if __name__ == "__main__":
    app()
