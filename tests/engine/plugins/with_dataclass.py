"""Test plugin: dataclasses need the module registered under its __name__."""

from __future__ import annotations

import dataclasses
from typing import ClassVar


@dataclasses.dataclass
class Point:
    kind: ClassVar[str] = "point"
    x: int
    y: int = 0


def process_scheduled_call(influxdb3_local, call_time, args=None):
    return Point(3)
