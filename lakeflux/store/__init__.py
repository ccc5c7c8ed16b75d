"""lakeflux.store"""
