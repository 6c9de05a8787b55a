"""The jobs users run: pack (any layout -> registry storage) and unpack (any layout -> skopeo dir tree)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from regpack import layouts
from regpack.bundle import Bundle
from regpack.engine import ExecStats, execute
from regpack.errors import BundleError
from regpack.layouts import registry, skopeo_dir
from regpack.plan import Plan
from regpack.progress import Progress, ProgressCallback

__all__ = ["JobResult", "Progress", "pack", "unpack"]


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


def _verify_staged(path: Path) -> None:
    from regpack.verify import verify

    report = verify(path)
    if not report.ok:
        first = report.errors[0]
        raise BundleError(
            f"output failed verification: {first.reason} ({len(report.errors)} error(s))",
            first.path,
            first.image,
        )


def _run(
    src: Path,
    dest: Path,
    to_plan: Callable[[Bundle], Plan],
    *,
    copy: bool,
    jobs: int | None,
    merge: bool,
    verify: bool,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
    message: str,
) -> JobResult:
    started = time.monotonic()
    bundle = layouts.read(Path(src)).check()
    stats: ExecStats = execute(
        to_plan(bundle),
        Path(dest),
        copy=copy,
        jobs=jobs,
        merge=merge,
        progress=progress,
        cancel=cancel,
        check=_verify_staged if verify and not merge else None,
        message=message,
    )
    if verify and merge:
        _verify_staged(Path(dest))
    return JobResult(
        Path(dest),
        len(bundle.images),
        stats.files,
        stats.bytes_total,
        stats.bytes_copied,
        stats.bytes_linked,
        time.monotonic() - started,
        stats.skipped,
    )


def pack(
    src: Path,
    dest: Path,
    *,
    copy: bool = False,
    jobs: int | None = None,
    merge: bool = False,
    verify: bool = False,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> JobResult:
    """Pack the bundle at ``src`` into registry v2 storage at ``dest`` (``dest/docker/registry/v2``)."""
    return _run(
        src, dest, registry.plan_pack, copy=copy, jobs=jobs, merge=merge, verify=verify,
        progress=progress, cancel=cancel, message="packing",
    )  # fmt: skip


def unpack(
    src: Path,
    dest: Path,
    *,
    copy: bool = False,
    jobs: int | None = None,
    verify: bool = False,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> JobResult:
    """Unpack the bundle at ``src`` into a skopeo dir tree at ``dest``: one ``<repository>:<tag>`` folder a tag."""
    return _run(
        src, dest, skopeo_dir.plan_unpack, copy=copy, jobs=jobs, merge=False, verify=verify,
        progress=progress, cancel=cancel, message="unpacking",
    )  # fmt: skip
