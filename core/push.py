"""Push every image of a bundle into a registry with skopeo, each under its full repository name, digest unchanged.

How each layout reaches skopeo without a copy of its data:
- a skopeo dir tree: each image folder as ``dir:`` (skopeo's own format);
- registry storage: a loopback docker-registry serving the storage read-only (``regpack serve``), images read as
  ``docker://127.0.0.1:PORT/...``: nothing is written, so a bundle on read-only media pushes as it is;
- an OCI layout: a temporary skopeo dir view of it, hard-linked beside it (links, no data), removed at the end.

Before copying, ``skopeo inspect --raw`` asks the destination for the tag: when it already holds the same manifest
digest the image counts as already there, so a rerun after a failure or a kill pushes only what is missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from regpack import layouts
from regpack.bundle import Bundle, Image, Layout
from regpack.engine import execute
from regpack.errors import Cancelled, RegpackError
from regpack.layouts import registry, skopeo_dir
from regpack.names import unpack_folder, valid_repository
from regpack.progress import Meter, ProgressCallback
from regpack.selection import LeftOut, Selection, check_destinations, select
from regpack.transfer import Access, Server, Skopeo, ToolError

DEFAULT_JOBS = 4


class Status(StrEnum):
    PUSHED = "pushed"
    PRESENT = "already there"
    FAILED = "failed"
    NOT_ATTEMPTED = "not attempted"


@dataclass(frozen=True, slots=True)
class Target:
    """``REGISTRY[/NAMESPACE]``: a registry host (with port) and an optional repository prefix (a Harbor project)."""

    host: str
    namespace: str = ""

    @staticmethod
    def parse(text: str) -> Target:
        text = text.strip()
        text = text.removeprefix("docker://").rstrip("/")
        host, _, namespace = text.partition("/")
        if not ("." in host or ":" in host or host == "localhost") or any(c.isspace() or c == "@" for c in host):
            raise RegpackError(
                f"not a registry: {text[:200]!r} (expected HOST[:PORT][/NAMESPACE], the host with a dot or a "
                "port, or localhost)"
            )
        if namespace and not valid_repository(namespace):
            raise RegpackError(
                f"invalid namespace {namespace[:200]!r} (lowercase components [a-z0-9] joined by . _ __ - and /)"
            )
        return Target(host, namespace)

    def destination(self, image: Image) -> str:
        repository = f"{self.namespace}/{image.repository}" if self.namespace else image.repository
        ref = image.reference
        suffix = f":{ref.tag}" if ref.tag is not None else f"@{ref.digest or image.digest}"
        return f"docker://{self.host}/{repository}{suffix}"


@dataclass(frozen=True, slots=True)
class Outcome:
    image: str
    destination: str
    status: Status
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PushResult:
    outcomes: list[Outcome]
    via: str  # how the source reached skopeo
    seconds: float
    bytes_total: int
    left_out: tuple[LeftOut, ...] = ()  # images the selection did not carry, and why

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status is status)

    @property
    def ok(self) -> bool:
        return all(o.status in (Status.PUSHED, Status.PRESENT) for o in self.outcomes)


def image_bytes(bundle: Bundle, image: Image) -> dict[str, int]:
    """Digest text -> size of every manifest and blob the image needs (what skopeo may send for it)."""
    sizes = {str(m.digest): m.size for m in image.manifests}
    for d in image.blob_digests():
        blob = bundle.blobs.get(d)
        if blob is not None:
            sizes[str(d)] = blob.size
    return sizes


def plan_push(bundle: Bundle, target: Target) -> list[tuple[Image, str]]:
    """(image, destination reference) for every image, sorted by name. Two images bound for one reference (the
    same repository from two hosts, say) are refused before anything is sent, naming both."""
    check_destinations(bundle, target.destination, "the registry reference")
    return sorted(((image, target.destination(image)) for image in bundle.images), key=lambda pair: pair[0].name)


def repository_of(destination: str) -> str:
    """``docker://HOST/REPO:TAG`` or ``docker://HOST/REPO@DIGEST`` -> ``HOST/REPO``."""
    name = destination.removeprefix("docker://").partition("@")[0]
    head, colon, tail = name.rpartition(":")
    return head if colon and "/" not in tail else name


def by_repository(work: list[tuple[Image, str]]) -> list[list[tuple[Image, str]]]:
    """The push work in groups, one per destination repository, each group to be sent in turn (largest first).

    docker-registry 2.8 (and registries built on it) rewrites a repository's blob link files in place while a
    manifest put into the same repository reads them: two images that share a layer, pushed into one repository
    at once, can fail with "digest invalid" / "manifest blob unknown". Different repositories never share link
    files, so they go in parallel."""
    groups: dict[str, list[tuple[Image, str]]] = {}
    for image, dest in work:
        groups.setdefault(repository_of(dest), []).append((image, dest))
    return sorted(groups.values(), key=lambda group: -len(group))  # stable: name order among equals


def read_selected(src: Path, selection: Selection | None) -> tuple[Bundle, tuple[LeftOut, ...]]:
    """The bundle at ``src`` as the selection carries it (renamed, filtered); refused when an error remains.

    With ``skip_broken`` an image with a reading error is left out; a blob whose bytes do not match its digest
    is found by skopeo while it copies, which fails that image by name."""
    chosen = select(layouts.read(Path(src)), selection or Selection())
    return chosen.bundle.check(), chosen.left_out


@contextlib.contextmanager
def source_view(
    bundle: Bundle, cancel: threading.Event | None = None
) -> Iterator[tuple[Callable[[Image], str], Access, str]]:
    """How skopeo reads each image of ``bundle``: (image -> source reference, source access, a description)."""
    if bundle.layout is Layout.SKOPEO_DIR and bundle.source is None:

        def from_folder(image: Image) -> str:
            assert image.folder is not None
            return f"dir:{os.path.abspath(image.folder)}"

        yield from_folder, Access(), "skopeo dir folders"
    elif bundle.layout is Layout.REGISTRY and bundle.source is None:
        v2 = registry.v2_root(bundle.root)
        assert v2 is not None
        with Server(v2.parent.parent.parent) as server:

            def from_server(image: Image) -> str:
                return f"docker://{server.address}/{image.source_name}"  # storage names have no host

            yield from_server, Access(tls_verify=False), f"a read-only docker-registry on {server.address}"
    else:
        parent = Path(os.path.abspath(bundle.root)).parent
        try:
            work = Path(tempfile.mkdtemp(prefix=".regpack-push-", dir=parent))
        except OSError:
            work = Path(tempfile.mkdtemp(prefix="regpack-push-"))
        try:
            plan = skopeo_dir.plan_unpack(bundle)
            if bundle.source is not None:  # an archive: each blob written once, then hard-linked into the view
                from regpack.layouts.archive import ArchiveSource, materialize

                assert isinstance(bundle.source, ArchiveSource)
                plan, _ = materialize(bundle.source, plan, work / "view", cancel=cancel)  # inside ``work``
            stats = execute(plan, work / "view", cancel=cancel, message="preparing")
            if bundle.source is not None:
                how = "a skopeo dir view extracted from the archive (each blob once)"
            else:
                how = f"a {'hard-linked' if not stats.bytes_copied else 'copied (another filesystem)'} skopeo dir view"
            tree = work / "view"
            yield (lambda image: f"dir:{tree / unpack_folder(image.reference)}"), Access(), how
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _digest_of(raw: bytes, algorithm: str) -> str:
    return f"{algorithm}:{hashlib.new(algorithm, raw).hexdigest()}"


def push(
    src: Path,
    target: Target,
    *,
    access: Access | None = None,
    jobs: int | None = None,
    selection: Selection | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    skopeo: Skopeo | None = None,
) -> PushResult:
    """Push every image of ``src`` below ``target``; failures are in the result (never raised), Cancelled is."""
    started = time.monotonic()
    cancel = cancel or threading.Event()
    skopeo = skopeo or Skopeo()
    access = access or Access()
    bundle, left_out = read_selected(src, selection)
    work = plan_push(bundle, target)
    sizes = {dest: image_bytes(bundle, image) for image, dest in work}
    every: dict[str, int] = {}
    for per in sizes.values():
        every.update(per)
    total = sum(every.values())
    meter = Meter(progress, total, len(work), "pushing")
    counted: set[str] = set()
    lock = threading.Lock()
    refused = threading.Event()  # the registry refused the credentials: the rest would fail the same way
    outcomes: dict[str, Outcome] = {}

    def count(digests: dict[str, int], images: int) -> None:
        with lock:
            fresh = [d for d in digests if d not in counted]
            counted.update(fresh)
        meter.add(sum(digests[d] for d in fresh), images)

    def one(image: Image, dest: str, source: Callable[[Image], str], src_access: Access) -> Outcome:
        if cancel.is_set():
            raise Cancelled()
        if refused.is_set():
            count({}, 1)
            return Outcome(image.name, dest, Status.NOT_ATTEMPTED, "the registry refused the credentials")
        per = sizes[dest]
        try:
            raw = skopeo.inspect_raw(dest, access, what=f"checking {dest}", cancel=cancel)
            if raw is not None and _digest_of(raw, image.digest.algorithm) == str(image.digest):
                count(per, 1)
                return Outcome(image.name, dest, Status.PRESENT)

            def on_line(line: str) -> None:
                if line.startswith(("Copying blob ", "Copying config ")):
                    word = line.split()[2] if len(line.split()) > 2 else ""
                    found = {d: s for d, s in per.items() if d == word or d.split(":")[-1].startswith(word)}
                    count(found, 0)

            skopeo.copy(
                source(image),
                dest,
                src_access=src_access,
                dest_access=access,
                extra=("--all", "--preserve-digests"),
                what=f"pushing {image.name} to {dest}",
                cancel=cancel,
                on_line=on_line,
            )
        except ToolError as e:
            if e.is_auth:
                refused.set()
            count({}, 1)
            return Outcome(image.name, dest, Status.FAILED, e.reason)
        count(per, 1)
        return Outcome(image.name, dest, Status.PUSHED)

    def in_turn(group: list[tuple[Image, str]], source: Callable[[Image], str], src_access: Access) -> list[Outcome]:
        return [one(image, dest, source, src_access) for image, dest in group]

    with source_view(bundle, cancel) as (source, src_access, via), ThreadPoolExecutor(jobs or DEFAULT_JOBS) as pool:
        futures = [pool.submit(in_turn, group, source, src_access) for group in by_repository(work)]
        try:
            for future in futures:
                for outcome in future.result():
                    outcomes[outcome.destination] = outcome
        except BaseException:
            cancel.set()
            for f in futures:
                f.cancel()
            raise
    meter.finish()
    return PushResult([outcomes[dest] for _, dest in work], via, time.monotonic() - started, total, left_out)
