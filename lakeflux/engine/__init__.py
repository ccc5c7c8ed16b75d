"""lakeflux.engine"""
