"""lakeflux.lineprotocol"""
