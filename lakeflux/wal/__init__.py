"""The write-ahead log: Parquet segments committed with put-if-absent; knows nothing of the catalog."""

from .segment import Segment, WalTable, decode, encode
from .wal import RangeFile, Wal, WalListener

__all__ = ["Segment", "WalTable", "Wal", "WalListener", "RangeFile", "encode", "decode"]
