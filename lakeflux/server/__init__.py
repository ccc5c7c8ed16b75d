"""lakeflux.server"""
