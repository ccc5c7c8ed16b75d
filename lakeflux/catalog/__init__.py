"""lakeflux.catalog"""
