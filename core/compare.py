"""Reading the two sides of a comparison: what the base holds (any bundle or an inventory) and the new release.

Reading a bundle of thousands of images is CPU-bound Python: on a machine with more than one core the base is
read in a forked child process, which sends back only its inventory (digests and sizes), while this process
reads the new release.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from regpack import layouts
from regpack.bundle import Bundle
from regpack.errors import BundleError, Code
from regpack.patch import Inventory, inventory_of, load_inventory


def base_inventory(path: Path) -> Inventory:
    """What a base holds: an inventory file, or any bundle (read and checked)."""
    path = Path(path)
    if path.is_file():
        return load_inventory(path)
    return inventory_of(layouts.read(path).check())


def _child(path: str) -> Inventory | tuple[str, str | None, str | None, Code]:
    try:
        return base_inventory(Path(path))
    except BundleError as e:  # sent back as plain values: the exception's own pickling loses its fields
        return (e.reason, str(e.path) if e.path is not None else None, e.image, e.code)


def read_pair(old: Path, new: Path, *, parallel: bool | None = None) -> tuple[Inventory, Bundle]:
    """(what OLD holds, NEW as read: its problems for the caller to select from or refuse with ``check()``).

    ``parallel``: None = when fork and a second core are there.
    """
    if parallel is None:
        parallel = (os.cpu_count() or 1) > 1 and "fork" in multiprocessing.get_all_start_methods()
    if not parallel or Path(old).is_file():
        return base_inventory(old), layouts.read(Path(new))
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as pool:
        future = pool.submit(_child, str(old))
        bundle = layouts.read(Path(new))
        got = future.result()
    if isinstance(got, tuple):
        reason, path, image, code = got
        raise BundleError(reason, path, image, code)
    return got, bundle
