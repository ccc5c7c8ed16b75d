"""Test plugin without any entry point."""

process_writes = "not a function"
