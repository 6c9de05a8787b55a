"""Emitting Qt signals from Python without corrupting ``True``'s reference count.

PySide6 6.12 on Python 3.11 returns the result of ``Signal.emit()`` (``True``) without taking a reference
for it, so every emitted signal costs ``True`` one reference. ``True`` starts with a few hundred, so a job
reporting progress ten times a second crashed the interpreter within a minute ("bool_dealloc: deallocating
True or False"). Python 3.12+ makes ``True`` immortal, where this is harmless.

Every emit in the window goes through :func:`emit`. Whether this PySide6 has the fault is measured once at
import, so a fixed release is left alone.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

from PySide6.QtCore import QObject, Signal

_incref = ctypes.pythonapi.Py_IncRef
_incref.argtypes = [ctypes.py_object]
_incref.restype = None


class _Probe(QObject):
    ping = Signal()


def _emit_drops_a_reference() -> bool:
    probe = _Probe()
    tries = 8
    before = sys.getrefcount(True)
    for _ in range(tries):
        probe.ping.emit()
    lost = before - sys.getrefcount(True)
    for _ in range(max(lost, 0)):  # give back what the probe itself cost
        _incref(True)
    return lost >= tries


EMIT_DROPS_REFERENCE = _emit_drops_a_reference()


def emit(signal: Any, *args: Any) -> None:
    """``signal.emit(*args)``, paying back the reference PySide6 forgets to take on the returned bool."""
    result = signal.emit(*args)
    if EMIT_DROPS_REFERENCE and isinstance(result, bool):
        _incref(result)
