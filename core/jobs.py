"""The jobs users run: pack (any layout -> registry storage) and unpack (any layout -> skopeo dir tree)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from regpack import layouts
from regpack.bundle import Bundle, Image
from regpack.engine import ExecStats, execute
from regpack.errors import BundleError, Cancelled, Severity
from regpack.layouts import registry, skopeo_dir
from regpack.names import unpack_folder
from regpack.plan import Plan
from regpack.progress import Progress, ProgressCallback
from regpack.selection import LeftOut, Reason, Selected, Selection, check_destinations, select

if TYPE_CHECKING:
    from regpack.verify import Report

__all__ = ["JobResult", "Progress", "Selection", "pack", "unpack"]


@dataclass(frozen=True, slots=True)
class JobResult:
    dest: Path
    images: int
    files: int
    bytes_total: int
    bytes_copied: int
    bytes_linked: int
    seconds: float
    skipped: int = 0
    left_out: tuple[LeftOut, ...] = ()  # images the selection did not carry, and why
    verified_files: int = 0  # blobs re-hashed after writing (0: not verified)
    verified_bytes: int = 0
    warnings: tuple[str, ...] = ()  # "warning: ..." for what the source holds but could not carry, by name


def _in_dest(path: Path | None, staged: Path, dest: Path) -> Path | None:
    """A path inside the staged output, as the user will find it: below ``dest``."""
    if path is None:
        return None
    try:
        return dest / Path(path).relative_to(staged)
    except ValueError:
        return path


def _verify_staged(
    staged: Path,
    dest: Path,
    fast: bool,
    written: bool = False,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> Report:
    from regpack.verify import verify

    report = verify(staged, fast=fast, progress=progress, cancel=cancel)
    if not report.ok:
        first = report.errors[0]
        raise BundleError(
            f"output failed verification: {first.reason} ({len(report.errors)} error(s))"
            + ("" if written else "; nothing was written"),
            _in_dest(first.path, staged, dest),
            first.image,
            first.code,
        )
    return report


def _hash_failures(
    selected: Selected, jobs: int | None, progress: ProgressCallback | None, cancel: threading.Event | None
) -> dict[str, str]:
    """Image name -> the first content error found by hashing its blobs (for --skip-broken)."""
    from regpack.verify import verify_bundle

    found: dict[str, str] = {}
    for f in verify_bundle(selected.bundle, jobs=jobs, progress=progress, cancel=cancel).errors:
        if f.image is not None:
            found.setdefault(f.image, f"{f.where}: {f.reason}" if f.where else f.reason)
    return found


def _run(
    src: Path,
    dest: Path,
    to_plan: Callable[[Bundle], Plan],
    destination: Callable[[Image], str],
    what: str,
    *,
    copy: bool,
    jobs: int | None,
    merge: bool,
    verify: bool,
    selection: Selection | None,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
    message: str,
) -> JobResult:
    started = time.monotonic()
    selection = selection or Selection()
    bundle = layouts.read(Path(src))
    chosen = select(bundle, selection)
    if selection.skip_broken:
        # Broken content is found only by hashing: do it before anything is written, so that the images whose
        # blobs are corrupt are left out too, and what is written can be checked by structure afterwards.
        unrenamed = select(bundle, replace(selection, renames=()))
        chosen = select(bundle, selection, _hash_failures(unrenamed, jobs, progress, cancel))
    if cancel is not None and cancel.is_set():
        raise Cancelled()
    selected = chosen.bundle.check()
    if not selected.images:
        raise BundleError("no image left to carry: " + _left_out_summary(chosen), Path(src))
    check_destinations(selected, destination, what)
    dest = Path(dest)
    fast = not verify  # --skip-broken alone: the source was hashed, the output is checked by structure
    check_output = verify or selection.skip_broken
    verified: list[Report] = []  # the output's verify phase reports its own progress

    def check(staged: Path, written: bool = False) -> None:
        verified.append(_verify_staged(staged, dest, fast, written, progress, cancel))

    stats: ExecStats = execute(
        to_plan(selected),
        dest,
        copy=copy,
        jobs=jobs,
        merge=merge,
        progress=progress,
        cancel=cancel,
        check=check if check_output and not merge else None,
        message=message,
    )
    if check_output and merge:
        check(dest, written=True)
    return JobResult(
        dest,
        len(selected.images),
        stats.files,
        stats.bytes_total,
        stats.bytes_copied,
        stats.bytes_linked,
        time.monotonic() - started,
        stats.skipped,
        chosen.left_out,
        sum(r.files_hashed for r in verified),
        sum(r.bytes_hashed for r in verified),
        tuple(str(p) for p in selected.problems if p.severity is Severity.WARNING),
    )


def _left_out_summary(chosen: Selected) -> str:
    counts = [f"{chosen.count(r)} {r.value}" for r in Reason if chosen.count(r)]
    return ", ".join(counts) if counts else "the bundle holds no image"


def pack(
    src: Path,
    dest: Path,
    *,
    copy: bool = False,
    jobs: int | None = None,
    merge: bool = False,
    verify: bool = False,
    selection: Selection | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> JobResult:
    """Pack the bundle at ``src`` into registry v2 storage at ``dest`` (``dest/docker/registry/v2``)."""
    return _run(
        src, dest, registry.plan_pack, lambda image: image.reference.stored, "image", copy=copy, jobs=jobs,
        merge=merge, verify=verify, selection=selection, progress=progress, cancel=cancel, message="packing",
    )  # fmt: skip


def unpack(
    src: Path,
    dest: Path,
    *,
    copy: bool = False,
    jobs: int | None = None,
    verify: bool = False,
    selection: Selection | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> JobResult:
    """Unpack the bundle at ``src`` into a skopeo dir tree at ``dest``: one ``<repository>:<tag>`` folder a tag."""
    return _run(
        src, dest, skopeo_dir.plan_unpack, lambda image: unpack_folder(image.reference) + "/", "folder", copy=copy,
        jobs=jobs, merge=False, verify=verify, selection=selection, progress=progress, cancel=cancel,
        message="unpacking",
    )  # fmt: skip
