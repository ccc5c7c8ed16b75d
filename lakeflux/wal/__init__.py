"""lakeflux.wal"""
