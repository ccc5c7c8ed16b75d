"""lakeflux.testing"""
