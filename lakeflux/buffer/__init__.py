"""lakeflux.buffer"""
