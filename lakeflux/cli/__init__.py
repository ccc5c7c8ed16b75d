"""lakeflux.cli"""
