"""lakeflux.query"""
