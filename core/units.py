"""One way to show sizes everywhere (CLI and window): binary units, like ``du -h``."""

from __future__ import annotations

import humanize


def human_size(n: int | float) -> str:
    return str(humanize.naturalsize(n, binary=True, format="%.1f"))


def human_rate(bytes_per_second: float) -> str:
    return f"{human_size(bytes_per_second)}/s"
