"""Reading the two sides of a comparison: what the base holds (any bundle or an inventory) and the new release."""

from __future__ import annotations

from pathlib import Path

from regpack import layouts
from regpack.bundle import Bundle
from regpack.patch import Inventory, inventory_of, load_inventory


def base_inventory(path: Path) -> Inventory:
    """What a base holds: an inventory file, or any bundle (a folder or an archive; read and checked)."""
    from regpack.layouts import archive

    path = Path(path)
    if path.is_file() and archive.sniff(path) is None:
        return load_inventory(path)
    return inventory_of(layouts.read(path).check())


def read_pair(old: Path, new: Path) -> tuple[Inventory, Bundle]:
    """(what OLD holds, NEW as read: its problems for the caller to select from or refuse with ``check()``)."""
    return base_inventory(old), layouts.read(Path(new))
