"""The jobs users run: pack (any layout -> registry storage) and unpack (any layout -> skopeo dir tree)."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from regpack import layouts
from regpack.archive import DEFAULT_LEVEL, ArchiveStats, archive_format, check_archive_destination, write_archive
from regpack.bundle import Bundle, Image, Role
from regpack.compare import base_inventory
from regpack.digest import Digest, hash_file
from regpack.engine import ExecStats, _wrap_os_error, check_destination, default_jobs, execute, safe_target
from regpack.errors import BundleError, Cancelled, DestinationError, RegpackError, Severity
from regpack.layouts import registry, skopeo_dir
from regpack.names import unpack_folder
from regpack.patch import (
    DESCRIPTION,
    Inventory,
    PatchDescription,
    image_users,
    payload_digests,
    resolve_base,
)
from regpack.plan import Plan
from regpack.progress import Meter, Progress, ProgressCallback
from regpack.selection import LeftOut, Reason, Selected, Selection, check_destinations, select
from regpack.units import human_size

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
    moved: tuple[str, ...] = ()  # tags re-pointed in the destination (repository:tag)
    from_base: int = 0  # blobs of a patch left to its base (made) or taken from it (applied)
    warnings: tuple[str, ...] = ()  # "warning: ..." for what the source holds but could not carry, by name
    archive: ArchiveStats | None = None  # set when the output is an archive
    blobs_copied: int = 0
    blobs_linked: int = 0


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


def _from_archive(
    source: object,
    plan: Plan,
    near: Path,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
    more: Sequence[object] = (),
) -> tuple[Plan, list[Path]]:
    """A plan reading from files: for a bundle read from an archive, its blobs are first written once beside
    ``near`` (the same filesystem, so the engine hard-links them into place); the caller removes those folders.

    ``more`` are the sources of other bundles the plan reads from (a patch's base read from an archive): each
    archive gives the blobs the plan reads from it; a plan reading a file of an archive's view that is not one
    of its members is refused."""
    from regpack.layouts.archive import ArchiveSource, materialize

    archives = [s for s in (source, *more) if s is not None]
    folders: list[Path] = []
    near = Path(os.path.abspath(near))
    try:
        for archive in archives:
            assert isinstance(archive, ArchiveSource)
            inside = archive.view_root + "/"
            mine = {dst: op for dst, op in plan.blobs.items() if op.src.startswith(inside)}
            if not mine:
                continue
            near.parent.mkdir(parents=True, exist_ok=True)
            part, folder = materialize(archive, Plan(plan.images, mine, {}), near, progress=progress, cancel=cancel)
            folders.append(folder)
            plan = plan.with_blobs({**plan.blobs, **part.blobs})
        return plan, folders
    except BaseException as e:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        if isinstance(e, OSError) and not isinstance(e, RegpackError):
            raise _wrap_os_error(e, near) from e
        raise


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
    move_tags: bool = False,
    more_sources: Sequence[object] = (),
) -> JobResult:
    started = time.monotonic()
    selection = selection or Selection()
    # "reading N images" before the plan; --jobs 1: one core, so one process reads a big registry storage too
    bundle = layouts.read(Path(src), progress=progress, cancel=cancel, one_process=jobs == 1)
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

    plan = to_plan(selected)
    if selected.source is not None:  # refuse a bad destination before reading the whole archive
        check_destination(Path(os.path.abspath(dest)), merge)
    plan, unpacked = _from_archive(selected.source, plan, dest, progress, cancel, more_sources)
    try:
        stats: ExecStats = execute(
            plan,
            dest,
            copy=copy,
            jobs=jobs,
            merge=merge,
            progress=progress,
            cancel=cancel,
            check=check if check_output and not merge else None,
            message=message,
            move_tags=move_tags or selected.is_patch,
        )
    finally:
        for folder in unpacked:
            shutil.rmtree(folder, ignore_errors=True)
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
        stats.moved,
        len(selected.from_base),
        tuple(str(p) for p in selected.problems if p.severity is Severity.WARNING),
        blobs_copied=stats.blobs_copied,
        blobs_linked=stats.blobs_linked,
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
    base: Path | None = None,
    move_tags: bool = False,
    level: int = DEFAULT_LEVEL,
    split: int | None = None,
) -> JobResult:
    """Pack the bundle at ``src`` into registry v2 storage at ``dest`` (``dest/docker/registry/v2``).

    A ``dest`` ending in ``.tar`` or ``.tar.zst`` (or ``-``, stdout) gets the same storage as one archive.

    With ``base`` (a bundle of any layout, or an inventory file) the result is a patch: every manifest and link
    of ``src`` but only the blobs the base lacks, and the patch description. Packing a patch checks first that
    ``dest`` holds every blob the patch needs from its base (hashing them too with ``verify``); the tags the
    patch moves are moved, as ``move_tags`` does for any bundle merged into a storage.
    """
    if os.fspath(dest).lower().endswith((".tar.gz", ".tgz")):
        raise BundleError(
            "regpack writes .tar and .tar.zst archives (it reads .tar.gz; -o NAME.tar.zst for a compressed one)",
            Path(dest),
        )
    if archive_format(dest) is not None:
        if merge:
            raise BundleError("--merge writes into a registry storage folder, not an archive", dest)
        return pack_archive(
            src, dest, level=level, split=split, jobs=jobs, verify=verify, selection=selection,
            progress=progress, cancel=cancel, base=base,
        )  # fmt: skip
    if split is not None:
        raise BundleError("--split cuts an archive (-o NAME.tar or NAME.tar.zst), not a folder", dest)
    inventory = base_inventory(base) if base is not None else None
    left_to_base: dict[Digest, int] = {}

    def to_plan(bundle: Bundle) -> Plan:
        if inventory is not None:
            plan, needed = plan_patch(bundle, inventory)
            left_to_base.update(needed)
            return plan
        if bundle.from_base:
            check_base_present(bundle, Path(dest), hash_blobs=verify, jobs=jobs, cancel=cancel, progress=progress)
        return registry.plan_pack(bundle)

    result = _run(
        src, dest, to_plan, lambda image: image.reference.stored, "image", copy=copy, jobs=jobs,
        merge=merge, verify=verify, selection=selection, progress=progress, cancel=cancel, message="packing",
        move_tags=move_tags,
    )  # fmt: skip
    return replace(result, from_base=len(left_to_base)) if inventory is not None else result


def pack_archive(
    src: Path,
    dest: Path | str,
    *,
    level: int = DEFAULT_LEVEL,
    split: int | None = None,
    jobs: int | None = None,
    verify: bool = False,
    selection: Selection | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    base: Path | None = None,
    extra: dict[str, bytes] | None = None,
) -> JobResult:
    """Pack the bundle at ``src`` into one archive of registry storage: ``.tar``, ``.tar.zst`` or ``-``.

    With ``base`` the archive holds a patch, as ``pack`` writes it into a folder (``regpack-patch.json`` inside).
    ``extra`` are small files for the archive's root (name -> bytes), as pull records where images came from.
    """
    started = time.monotonic()
    compression = archive_format(dest)
    if compression is None:
        raise BundleError("an archive name ends in .tar or .tar.zst", dest)
    inventory = base_inventory(base) if base is not None else None
    chosen = select(layouts.read(Path(src), progress=progress, cancel=cancel), selection or Selection())
    selected = chosen.bundle.check()
    if not selected.images:
        raise BundleError("no image left to carry: " + _left_out_summary(chosen), Path(src))
    check_destinations(selected, lambda image: image.reference.stored, "image")
    if inventory is not None:
        plan, left_to_base = plan_patch(selected, inventory)
    else:
        if selected.from_base:
            raise BundleError(
                "is a patch: an archive of it would lose its description; apply it onto its base first", Path(src)
            )
        plan, left_to_base = registry.plan_pack(selected), {}
    for name, data in (extra or {}).items():
        plan.write(name, data)
    if os.fspath(dest) != "-":
        check_archive_destination(Path(os.path.abspath(dest)), split)
    near = Path(tempfile.gettempdir(), "regpack-stdout") if os.fspath(dest) == "-" else Path(os.path.abspath(dest))
    plan, unpacked = _from_archive(selected.source, plan, near, progress, cancel)
    layer_files = {
        registry.blob_rel(d) for d, blob in selected.blobs.items() if blob.role is Role.LAYER and blob.file is not None
    }

    verified: list[Report] = []

    def check(staged: Path) -> None:
        verified.append(_verify_staged(staged, Path(dest), False, False, progress, cancel))

    try:
        stats = write_archive(
            plan,
            dest,
            is_head=lambda op: op.dst not in layer_files,
            compression=compression,
            level=level,
            split=split,
            threads=jobs or default_jobs(),
            progress=progress,
            cancel=cancel,
            check=check if verify else None,
        )
    finally:
        for folder in unpacked:
            shutil.rmtree(folder, ignore_errors=True)
    return JobResult(
        Path(dest), len(selected.images), stats.files, stats.bytes_total, stats.bytes_total, 0,
        time.monotonic() - started, left_out=chosen.left_out, archive=stats, blobs_copied=len(plan.blobs),
        from_base=len(left_to_base),
        verified_files=sum(r.files_hashed for r in verified), verified_bytes=sum(r.bytes_hashed for r in verified),
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
    base: Path | None = None,
) -> JobResult:
    """Unpack the bundle at ``src`` into a skopeo dir tree at ``dest``: one ``<repository>:<tag>`` folder a tag.

    A patch unpacks only with ``base``, the bundle it was made against: the blobs it left out come from there.
    """

    bases: list[object] = []  # the base's archive, when read from one: its blobs are read from there

    def to_plan(bundle: Bundle) -> Plan:
        if bundle.from_base:
            if base is None:
                raise BundleError(
                    f"is a patch: {len(bundle.from_base)} blob(s) ({human_size(sum(bundle.from_base.values()))}) "
                    "come from the bundle it was made against; give it with --base",
                    bundle.root,
                )
            base_bundle = layouts.read(Path(base))
            bases.append(base_bundle.source)
            bundle = resolve_base(bundle, base_bundle).check()
        return skopeo_dir.plan_unpack(bundle)

    return _run(
        src, dest, to_plan, lambda image: unpack_folder(image.reference) + "/", "folder", copy=copy,
        jobs=jobs, merge=False, verify=verify, selection=selection, progress=progress, cancel=cancel,
        message="unpacking", more_sources=bases,
    )  # fmt: skip


# --- patches -------------------------------------------------------------------------------------------------


def plan_patch(bundle: Bundle, base: Inventory) -> tuple[Plan, dict[Digest, int]]:
    """Registry storage of ``bundle`` minus the blobs ``base`` holds, plus the patch description; and the blobs
    left to the base."""
    if bundle.from_base:
        raise BundleError(
            "is a patch itself: apply it onto its base first, then make a patch of the result", bundle.root
        )
    plan = registry.plan_pack(bundle)
    carried, needed = payload_digests(bundle, base)
    for digest in needed:
        plan.blobs.pop(registry.blob_rel(digest), None)
    payload = sum(bundle.blobs[d].size for d in carried)
    images = {img.reference.stored: img.digest for img in bundle.images}
    description = PatchDescription(needed, images, base.source, payload)
    plan.write(DESCRIPTION, description.to_bytes())
    return plan, needed


_LISTED = 50


def check_base_present(
    bundle: Bundle,
    dest: Path,
    *,
    hash_blobs: bool = False,
    jobs: int | None = None,
    cancel: threading.Event | None = None,
    progress: ProgressCallback | None = None,
) -> None:
    """Refuse, listing them (image, digest, size, why), when ``dest`` lacks blobs the patch needs from its base.

    Runs before anything is written. A blob counts as present as a regular file of the right size, reached
    through real folders only; with ``hash_blobs`` its content must hash to its digest too.
    """
    dest = Path(os.path.abspath(dest))
    real_dest = Path(os.path.realpath(dest))
    missing: list[tuple[Digest, int, str]] = []
    present: list[tuple[Digest, int, str]] = []
    for digest, size in sorted(bundle.from_base.items()):
        rel = registry.blob_rel(digest)
        try:
            target = safe_target(real_dest, rel)
            st = os.lstat(target)
        except (FileNotFoundError, NotADirectoryError):
            missing.append((digest, size, "absent"))
            continue
        except DestinationError as e:
            missing.append((digest, size, e.reason))
            continue
        if not stat.S_ISREG(st.st_mode):
            missing.append((digest, size, "not a regular file"))
        elif st.st_size != size:
            missing.append((digest, size, f"holds {st.st_size} bytes"))
        else:
            present.append((digest, size, str(target)))
    if hash_blobs and present:
        stop = cancel or threading.Event()
        meter = Meter(progress, sum(size for _, size, _ in present), len(present), "checking the base")

        def check(item: tuple[Digest, int, str]) -> tuple[Digest, int, str] | None:
            digest, size, target = item
            try:
                hex_, _ = hash_file(target, digest.algorithm, stop, lambda n: meter.add(n, 0))
            except OSError as e:
                return digest, size, f"cannot read: {e.strerror or e}"
            finally:
                meter.add(0, 1)
            return None if hex_ == digest.hex else (digest, size, f"content hashes to {digest.algorithm}:{hex_}")

        with ThreadPoolExecutor(max_workers=jobs or default_jobs(), thread_name_prefix="regpack-base") as pool:
            missing.extend(m for m in pool.map(check, present) if m is not None)
        meter.finish()
    if not missing:
        return
    users = image_users(bundle, (d for d, _, _ in missing))
    lines = []
    for digest, size, why in missing[:_LISTED]:
        names = ", ".join(users.get(digest) or ["(no image)"])
        lines.append(f"  {digest} ({size} bytes, {why}) needed by {names}")
    if len(missing) > _LISTED:
        lines.append(f"  ... and {len(missing) - _LISTED} more")
    raise DestinationError(
        f"lacks {len(missing)} of the {len(bundle.from_base)} blob(s) the patch needs from its base; "
        "nothing was written (apply the patch onto the storage it was made for):\n" + "\n".join(lines),
        dest,
    )
