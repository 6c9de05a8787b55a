"""Sizes, rates and durations as the window writes them: binary units, like ``du -h``.

Sizes, rates and durations come from core.units, so the window and the CLI print the same text for the same bytes.
"""

from __future__ import annotations

from regpack.units import human_duration, human_rate, human_size

__all__ = ["human_duration", "human_rate", "human_size", "size_scale"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def size_scale(largest: int | float) -> tuple[float, str]:
    """(divisor, unit) so that ``largest / divisor`` is a readable axis value; same units as human_size."""
    divisor = 1.0
    for unit in _UNITS:
        if largest < divisor * 1024 or unit == _UNITS[-1]:
            return divisor, unit
        divisor *= 1024
    return divisor, _UNITS[-1]
