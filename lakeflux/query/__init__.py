"""SQL over committed data: DataFusion sessions, system tables, output formats."""
