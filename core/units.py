"""One way to show sizes, rates and durations everywhere (CLI and window): binary units, like ``du -h``."""

from __future__ import annotations

import datetime as _dt

import humanize


def human_size(n: int | float) -> str:
    return str(humanize.naturalsize(n, binary=True, format="%.1f"))


def human_rate(bytes_per_second: float) -> str:
    return f"{human_size(bytes_per_second)}/s"


def human_duration(seconds: float) -> str:
    if seconds < 1:
        return "less than a second"
    return str(humanize.precisedelta(_dt.timedelta(seconds=round(seconds)), minimum_unit="seconds"))
