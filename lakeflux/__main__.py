"""`python -m lakeflux` runs the CLI."""

from .cli.main import app

app()
