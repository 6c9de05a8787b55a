"""The one way sizes, rates and durations are written in the window: binary units, like ``du -h``."""

from __future__ import annotations

import datetime as _dt

import humanize

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(n: int | float) -> str:
    """``57.0 KiB``, ``1.2 GiB``, ``12 Bytes``: every size the window shows goes through here."""
    return str(humanize.naturalsize(n, binary=True, format="%.1f"))


def human_rate(bytes_per_second: float) -> str:
    return f"{human_size(bytes_per_second)}/s"


def human_duration(seconds: float) -> str:
    if seconds < 1:
        return "less than a second"
    return str(humanize.precisedelta(_dt.timedelta(seconds=round(seconds)), minimum_unit="seconds"))


def size_scale(largest: int | float) -> tuple[float, str]:
    """(divisor, unit) so that ``largest / divisor`` is a readable axis value; same units as human_size."""
    divisor = 1.0
    for unit in _UNITS:
        if largest < divisor * 1024 or unit == _UNITS[-1]:
            return divisor, unit
        divisor *= 1024
    return divisor, _UNITS[-1]
