"""Verify a bundle: every manifest and blob present, of its declared size, hashing to its digest; links sound.

Reading the bundle already checks structure (manifests parse, references resolve, sizes, registry links);
this adds the content check: blobs are re-hashed in parallel, streaming, each distinct file once.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from regpack import layouts
from regpack.bundle import Bundle, Layout, Locations, Role
from regpack.digest import Digest
from regpack.errors import BundleError, Code, Problem, Severity, printable, worst_by_image
from regpack.hashing import SMALL_FILE, Hashed, hash_small_fd, hash_small_file
from regpack.layouts import cyclic_gc_paused
from regpack.layouts._common import FileStat, SafeRoot
from regpack.progress import Meter, ProgressCallback

# The engine (thread pools), the folder hasher and patches are imported where used: verify of an archive,
# hashed in one read of its own, starts without them.


@dataclass(frozen=True, slots=True)
class Report:
    root: Path
    layout: str
    findings: tuple[Problem, ...]
    images: tuple[str, ...]
    bytes_hashed: int
    files_hashed: int
    fast: bool = False
    # A patch: the blobs it expects from its base (count, bytes), and whether they were checked in a base.
    from_base_blobs: int = 0
    from_base_bytes: int = 0
    from_base_checked: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[Problem]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    def by_image(self) -> dict[str | None, list[Problem]]:
        """Findings per image, every image listed (clean ones too); ``None``: findings about the bundle."""
        grouped: dict[str | None, list[Problem]] = {name: [] for name in self.images}
        for f in self.findings:
            grouped.setdefault(f.image, []).append(f)
        return grouped

    def statuses(self) -> dict[str | None, Severity]:
        """Status per image (the worst severity of its findings), in the order of ``by_image``."""
        return worst_by_image(self.images, self.findings)

    def to_json(self) -> dict[str, Any]:
        statuses = self.statuses()
        return {
            "root": printable(self.root),
            "layout": self.layout,
            "ok": self.ok,
            "mode": "fast" if self.fast else "full",
            "images": [
                {
                    "name": name,
                    "ok": statuses[name] is not Severity.ERROR,
                    "findings": [_finding_json(f) for f in found],
                }
                for name, found in self.by_image().items()
                if name is not None
            ],
            "bundle_findings": [_finding_json(f) for f in self.by_image().get(None, [])],
            "errors": len(self.errors),
            "warnings": len(self.findings) - len(self.errors),
            "bytes_hashed": self.bytes_hashed,
            "files_hashed": self.files_hashed,
            "from_base": {
                "blobs": self.from_base_blobs,
                "bytes": self.from_base_bytes,
                "checked": self.from_base_checked,
            },
        }


def _finding_json(f: Problem) -> dict[str, Any]:
    found = {"severity": f.severity.value, "code": f.code.value, "path": f.where, "message": f.reason}
    return found | ({"repository": f.repository} if f.repository else {})


def verify(
    path: Path,
    *,
    fast: bool = False,
    jobs: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    base: Path | None = None,
) -> Report:
    """Check everything about the bundle at ``path``; never raises for a bad bundle, reports it.

    A patch's blobs expected from its base are counted, not reported missing; with ``base`` (the bundle the
    patch was made against) they are checked there like the patch's own blobs.
    """
    path = Path(path)
    # The read and the hashing after it as one pause of the cyclic collector (see layouts.cyclic_gc_paused): the
    # hashing allocates a few objects per file, enough to start a full collection over everything the read made.
    with cyclic_gc_paused():
        return _verify(path, fast=fast, jobs=jobs, progress=progress, cancel=cancel, base=base)


def _verify(
    path: Path,
    *,
    fast: bool,
    jobs: int | None,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
    base: Path | None,
) -> Report:
    try:
        # An archive is hashed as it is read (one read of its bytes); registry storage's small blobs as the
        # reader checks them; the other blobs of a folder after the read, in parallel.
        early = EarlyHashes()
        layout = layouts.detect(path) if not fast and path.is_dir() else None
        if layout is Layout.REGISTRY:
            from regpack.layouts import registry
            from regpack.layouts._watch import watching

            tree = _HashingRoot(path)
            with watching(progress, cancel):  # "reading N images" while the small blobs are hashed
                # a big storage is read by two processes, unless told to use one core (--jobs 1)
                bundle = registry.read(path, tree, parallel=False if jobs == 1 else None)
            early = tree.early
        else:
            # an archive's progress is its bytes, read and hashed in one pass; a folder's the images read
            archive = not fast and not path.is_dir()
            bundle = layouts.read(path, layout, progress=progress, cancel=cancel, hash_members=archive)
        if base is not None and bundle.from_base:
            from regpack.patch import resolve_base

            expected = dict(bundle.from_base)
            bundle = resolve_base(bundle, layouts.read(Path(base)))
            report = verify_bundle(bundle, fast=fast, jobs=jobs, progress=progress, cancel=cancel, early=early)
            return replace(
                report,
                from_base_blobs=len(expected),
                from_base_bytes=sum(expected.values()),
                from_base_checked=True,
            )
    except BundleError as e:
        return Report(path, "unknown", (Problem.of(e),), (), 0, 0, fast)
    return verify_bundle(bundle, fast=fast, jobs=jobs, progress=progress, cancel=cancel, early=early)


@dataclass(slots=True)
class EarlyHashes:
    """Blob files of registry storage hashed while it was read, by their real path.

    ``ok``: files whose bytes hash to the digest their path names (``blobs/<algorithm>/<xx>/<hex>/data``), of
    the size the reader found (a set of the strings the bundle keeps anyway: a few dozen bytes a blob);
    ``other``: what hashing gave for the rest (the algorithm, the result), a file that is damaged or changed.
    """

    ok: set[str] = field(default_factory=set)
    other: dict[str, tuple[str, Hashed]] = field(default_factory=dict)

    def __contains__(self, location: str) -> bool:
        return location in self.ok or location in self.other

    def result(self, location: str, digest: Digest) -> Hashed | None:
        """What hashing ``location`` for ``digest`` gave: MATCHED when its bytes hash to ``digest`` at the size the
        reader found; None when it was not hashed for this digest."""
        if location in self.ok:
            _, algorithm, _, hex_, _ = location.rsplit("/", 4)
            return MATCHED if algorithm == digest.algorithm and hex_ == digest.hex else None
        found = self.other.get(location)
        return found[1] if found is not None and found[0] == digest.algorithm else None


# A file hashed while reading that holds what its digest says: no result object kept per file.
MATCHED = Hashed("", -1, None)


class _HashingRoot(SafeRoot):
    """Registry storage on disk as verify reads it: each small blob file is hashed when the reader first checks
    it (its folder and inode are fresh then), so the hashing after the read has no stat and no pool task left
    for it. Big blobs are left to the pool, which spreads them over the cores."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.early = EarlyHashes()

    def file(self, path: Path | str, what: str) -> tuple[str, FileStat] | None:
        if what == "blob" and isinstance(path, str) and path not in self._files:
            opened = self.open_listed(path)
            if opened is not None:
                fd, size = opened
                try:
                    if size <= SMALL_FILE:
                        self._hashed(path, hash_small_fd(fd, path.rsplit("/", 4)[-4], size), size)
                finally:
                    os.close(fd)
                return path, FileStat(size)
        found = super().file(path, what)
        if found is not None and what == "blob":
            real, st = found
            # Only a file where the reader named it (.../blobs/<algorithm>/<xx>/<hex>/data, no symbolic link on
            # the way): its path says which digest it must hash to.
            if real == path and st.st_size <= SMALL_FILE and real not in self.early:
                self._hashed(real, hash_small_file(real, real.rsplit("/", 4)[-4], st.st_size), st.st_size)
        return found

    def helper_state(self) -> object:
        # sent block by block and forgotten: the helper keeps no result (its file cache hashes nothing twice)
        state = self.early.ok, self.early.other
        self.early = EarlyHashes()
        return state

    def merge_helper_state(self, state: object) -> dict[str, str]:
        ok, other = cast(tuple[set[str], dict[str, tuple[str, Hashed]]], state)
        self.early.ok.update(ok)
        self.early.other.update(other)
        return {name: name for name in ok}

    def _hashed(self, real: str, hashed: Hashed, size: int) -> None:
        if hashed.error is None:
            _, algorithm, _, hex_, _ = real.rsplit("/", 4)
            if hashed.hex == hex_ and hashed.size == size:
                self.early.ok.add(real)
            else:
                self.early.other[real] = (algorithm, hashed)


def verify_bundle(
    bundle: Bundle,
    *,
    fast: bool = False,
    jobs: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    early: EarlyHashes | None = None,
) -> Report:
    """Verify a bundle read already; ``early``: files hashed while it was read (by their real path)."""
    findings = list(bundle.problems)
    names = tuple(img.name for img in bundle.images)
    hashed_bytes = hashed_files = 0
    if not fast:
        if bundle.source is not None:
            hashed_bytes, hashed_files, more = _hash_archive(bundle, progress, cancel)
        else:
            from regpack.engine import default_jobs

            hashed_bytes, hashed_files, more = _hash_blobs(
                bundle, jobs or default_jobs(), progress, cancel, early or EarlyHashes()
            )
        findings.extend(more)
    return Report(
        bundle.root,
        bundle.layout.value,
        tuple(findings),
        names,
        hashed_bytes,
        hashed_files,
        fast,
        len(bundle.from_base),
        sum(bundle.from_base.values()),
    )


FileKey = tuple[int, int] | str
"""A file as verify tells files apart: (device, inode), or the path of a file hashed while reading."""


def _hash_blobs(
    bundle: Bundle,
    jobs: int,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
    early: EarlyHashes,
) -> tuple[int, int, list[Problem]]:
    """Hash each distinct file (by inode) once; a bad file is reported for every image that uses it. A file in
    ``early`` was hashed while the bundle was read: its result is taken as it is."""
    from regpack.hashing import FileToHash, hash_files

    # Manifests were hashed while reading (their digest is computed from their bytes); hash config and layers.
    # One check per file and digest: a file reached under several names (hard links) is hashed once, but a file
    # that two digests name (one blob's data hard-linked to another's) is checked against each.
    users: dict[tuple[FileKey, Digest], list[str]] = defaultdict(list)
    files: dict[tuple[FileKey, Digest], tuple[str, Digest, int]] = {}
    # Registry storage names one file from every image that uses the blob: stat each file name once. A file
    # hashed while reading is its own key (registry storage keeps a blob in one file, named by its digest).
    inodes: dict[str, FileKey | None] = {}
    blobs = bundle.blobs
    for image in bundle.images:
        name = image.name  # one string per image, however many files it uses
        manifest_digests = {m.digest for m in image.manifests}
        locations = image.locations
        for digest, location in locations.pairs() if isinstance(locations, Locations) else locations.items():
            if digest in manifest_digests:
                continue
            blob = blobs.get(digest)
            if blob is None or blob.role is Role.MANIFEST:
                continue
            if location in inodes:
                inode = inodes[location]
            else:
                if location in early:
                    inode = inodes[location] = location
                else:
                    try:
                        st = os.stat(location)
                        inode = inodes[location] = (st.st_dev, st.st_ino)
                    except OSError:
                        inode = inodes[location] = None  # reported while reading
            if inode is None:
                continue
            key = (inode, digest)
            if key not in files:
                # The size reading found (and checked against the manifest): a file that changed since is
                # reported as such, not as a digest mismatch.
                files[key] = (location, digest, blob.size)
            users[key].append(name)
    todo = list(files.items())
    meter = Meter(progress, sum(v[2] for _, v in todo), len(todo), "verifying")
    hashed: list[Hashed | None] = []
    left: list[FileToHash] = []
    early_bytes = 0
    for _, (location, digest, size) in todo:
        known = early.result(location, digest)
        if known is None:
            left.append(FileToHash(location, digest.algorithm, size))
        else:
            early_bytes += size if known is MATCHED else known.size
        hashed.append(known)
    meter.add(early_bytes, len(todo) - len(left))
    rest = iter(hash_files(left, jobs, cancel, meter.add))
    results = (h if h is not None else next(rest) for h in hashed)

    out: list[Problem] = []
    for (key, (location, digest, size)), result in zip(todo, results, strict=True):
        if result is MATCHED:
            continue
        hex_, read, error = result
        if error is not None:
            msg = f"cannot read blob: {error}"
            out.extend(_for_users(Code.UNREADABLE, msg, location, users[key]))
            continue
        if read != size:
            msg = f"blob changed while it was verified ({size} bytes before, {read} read)"
            out.extend(_for_users(Code.SIZE, msg, location, users[key]))
            continue
        if hex_ != digest.hex:
            msg = f"blob content hashes to {digest.algorithm}:{hex_}, expected {digest}"
            if bundle.layout is Layout.REGISTRY:
                msg += " (the registry would serve it as-is)"
            out.extend(_for_users(Code.DIGEST_MISMATCH, msg, location, users[key]))
    meter.finish()
    return meter.done_bytes, len(todo), out


def _for_users(code: Code, reason: str, location: str, images: list[str]) -> list[Problem]:
    return [Problem(Severity.ERROR, code, reason, Path(location), name) for name in images]


def _hash_archive(
    bundle: Bundle, progress: ProgressCallback | None, cancel: threading.Event | None
) -> tuple[int, int, list[Problem]]:
    """Blobs of an archive: hashed as the archive was read (``verify``), or by one sequential read now (a bundle
    read without hashing); either hashes every part too when there is a sidecar. A blob whose digest is not
    sha256 (sha512), when the index kept no bytes of it, is hashed by one more read of its own."""
    import hashlib

    from regpack.layouts.archive import ArchiveSource, hash_members, read_sidecar

    source = bundle.source
    assert isinstance(source, ArchiveSource)
    users: dict[str, list[str]] = defaultdict(list)
    expected: dict[str, Digest] = {}
    for image in bundle.images:
        manifest_digests = {m.digest for m in image.manifests}
        for digest, location in image.locations.items():
            blob = bundle.blobs.get(digest)
            if digest in manifest_digests or blob is None or blob.role is Role.MANIFEST:
                continue
            if source.member_at(location) is not None:
                expected[location] = digest
                users[location].append(image.name)
    out: list[Problem] = []
    try:
        sidecar = read_sidecar(source)
    except BundleError as e:
        out.append(Problem(Severity.ERROR, Code.SIDECAR, e.reason, e.path))
        sidecar = None
    found: dict[str, str] = {}
    part_digests = source.part_digests
    todo = {loc: d.algorithm for loc, d in expected.items()}
    if source.digests is not None:  # hashed in the read itself
        for location, digest in expected.items():
            name = source.name_of(location) or ""
            kept = source.data.get(name)
            if kept is not None:
                found[location] = hashlib.new(digest.algorithm, kept).hexdigest()
            elif digest.algorithm == "sha256" and name in source.digests:
                found[location] = source.digests[name]
        todo = {loc: alg for loc, alg in todo.items() if loc not in found}
    hash_parts = sidecar is not None and part_digests is None
    if todo or hash_parts:
        try:
            result = hash_members(source, todo, hash_parts=hash_parts, progress=progress, cancel=cancel)
        except BundleError as e:
            out.append(Problem.of(e))
            return 0, 0, out
        found.update(result.digests)
        part_digests = part_digests if result.part_digests is None else result.part_digests
    for location, digest in sorted(expected.items()):
        got = found.get(location)
        if got != digest.hex:
            msg = f"blob content hashes to {digest.algorithm}:{got}, expected {digest}"
            out.extend(_for_users(Code.DIGEST_MISMATCH, msg, str(source.display(location)), users[location]))
    if sidecar is not None and part_digests is not None:
        side_path, listed = sidecar
        names = [p.name for p in source.parts]
        for name, got in zip(names, part_digests, strict=True):
            want = listed.get(name)
            if want is None:
                msg = f"the sidecar does not list {name}"
                out.append(Problem(Severity.ERROR, Code.SIDECAR, msg, side_path))
            elif want != got:
                msg = f"{name} hashes to {got}, the sidecar says {want}: the archive changed or is damaged"
                out.append(Problem(Severity.ERROR, Code.SIDECAR, msg, side_path))
        for name in sorted(set(listed) - set(names)):
            msg = f"the sidecar lists {name}, which is not here"
            out.append(Problem(Severity.ERROR, Code.SIDECAR, msg, side_path))
    total = sum(m.size for loc in expected if (m := source.member_at(loc)) is not None)
    return total, len(expected), out


VerifyFn = Callable[[Path], Report]
