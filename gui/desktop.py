"""Install the desktop entry and icon for the current user (XDG base directories), without Qt or a display.

Installed with pip into a virtual environment, `regpack-gui` is not on the desktop's PATH, so the entry's
``Exec`` names the program by its absolute path.
"""

from __future__ import annotations

import os
import shutil
import sys
from importlib import resources
from pathlib import Path

ENTRY = "regpack.desktop"
ICON = "regpack.svg"
_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


def data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def exec_quote(argument: str) -> str:
    """Quote one argument of an ``Exec`` key as the Desktop Entry Specification asks."""
    if argument and not _RESERVED.intersection(argument):
        return argument
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in argument)
    return f'"{escaped}"'


def gui_executable() -> str:
    """The regpack-gui program that is running now (or the one on PATH)."""
    here = Path(sys.argv[0])
    if here.name == "regpack-gui" and here.is_file():
        return str(here.resolve())
    beside = Path(sys.executable).parent / "regpack-gui"  # the same environment's script
    if beside.is_file():
        return str(beside)
    found = shutil.which("regpack-gui")
    if found is None:
        raise FileNotFoundError("cannot find the regpack-gui program to put in the desktop entry")
    return found


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    partial.write_bytes(data)
    os.replace(partial, path)


def install_desktop_entry(home: Path | None = None, executable: str | None = None) -> list[Path]:
    """Write ``applications/regpack.desktop`` and the scalable icon below ``home``; return the files written."""
    home = home or data_home()
    program = executable or gui_executable()
    package = resources.files("regpack.resources")
    lines = []
    for line in package.joinpath(ENTRY).read_text(encoding="utf-8").splitlines():
        if line.startswith("Exec="):
            line = f"Exec={exec_quote(program)} %f"
        elif line.startswith("TryExec="):
            continue
        lines.append(line)
        if line.startswith("Exec="):
            lines.append(f"TryExec={program}")
    entry = home / "applications" / ENTRY
    icon = home / "icons" / "hicolor" / "scalable" / "apps" / ICON
    _write(entry, ("\n".join(lines) + "\n").encode("utf-8"))
    _write(icon, package.joinpath(ICON).read_bytes())
    return [entry, icon]


def uninstall_desktop_entry(home: Path | None = None) -> list[Path]:
    """Remove what :func:`install_desktop_entry` wrote; return the files that were there."""
    home = home or data_home()
    removed = []
    for path in (home / "applications" / ENTRY, home / "icons" / "hicolor" / "scalable" / "apps" / ICON):
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed
