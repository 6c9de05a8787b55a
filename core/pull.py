"""Pull a list of images with skopeo into a skopeo dir tree, or straight into packed registry storage.

The list is a text file of references (one a line, ``#`` comments) or skopeo-sync YAML. Each image is copied
into a staging folder beside the output and renamed into place when whole, so a rerun after a failure or a kill
fetches only what is missing. Where every image came from (reference and manifest digest) is recorded in
``regpack-sources.json`` at the top of the output, a file neither skopeo nor the registry looks at.

With ``pack`` the images gather in ``OUT.partial-pull`` (a skopeo dir tree) and are packed into ``OUT`` by hard
links at the end; the staging tree is then removed, so no second copy is kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from regpack.archive import archive_format, check_archive_destination
from regpack.errors import BundleError, Cancelled, RegpackError
from regpack.jobs import pack as pack_job
from regpack.jobs import pack_archive
from regpack.names import Reference, normalise, parse_reference, unpack_folder
from regpack.progress import Meter, ProgressCallback
from regpack.transfer import Access, Skopeo, ToolError, typed_credentials

SOURCES_FILE = "regpack-sources.json"
DEFAULT_JOBS = 4


@dataclass(frozen=True, slots=True)
class Item:
    """One image to fetch: ``source`` as skopeo takes it after ``docker://``, ``name`` its folder in the bundle."""

    source: str
    name: str
    access: Access


@dataclass(frozen=True, slots=True)
class PullOutcome:
    name: str
    source: str
    status: str  # "pulled", "already there", "failed"
    digest: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PullResult:
    dest: Path
    outcomes: list[PullOutcome]
    seconds: float
    packed: bool

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def ok(self) -> bool:
        return all(o.status != "failed" for o in self.outcomes)


def _split_host(reference: str) -> tuple[str, str]:
    first, sep, rest = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return "", reference


def make_item(reference: str, access: Access, where: Path) -> Item:
    """An item from a reference such as ``quay.io/calico/node:v3.15.1``; its folder drops the registry host (as
    registry storage does; Docker Hub's one-level names are ``library/...`` there) and follows unpack's rule."""
    reference = reference.strip().removeprefix("docker://")
    host, rest = _split_host(reference)
    last = rest.rsplit("/", 1)[-1]
    if "@" not in last and ":" not in last:
        rest += ":latest"
    try:
        parsed = parse_reference(rest, where)
    except BundleError as e:
        raise BundleError(f"{reference[:300]!r} is not an image reference: {e.reason}", where) from None
    # The host was split off above: a first component parse_reference reads as a host belongs to the repository.
    repository = normalise(host or "docker.io", parsed.full_repository)
    source = f"{host}/{rest}" if host else rest
    return Item(source, unpack_folder(Reference(repository, parsed.tag, parsed.digest)), access)


def _platform_args(platform: str) -> list[str]:
    if platform == "all":
        return ["--all"]
    parts = platform.split("/")
    if "," in platform or len(parts) not in (2, 3) or not all(parts):
        raise RegpackError(
            f"--platform {platform!r}: give 'all' or one OS/ARCH[/VARIANT] (skopeo copies either every platform "
            "of a list or one of them)"
        )
    variant = ["--override-variant", parts[2]] if len(parts) == 3 else []
    return ["--override-os", parts[0], "--override-arch", parts[1], *variant]


def read_list(path: Path, access: Access, skopeo: Skopeo, stack: contextlib.ExitStack) -> list[Item]:
    """Read a reference list or skopeo-sync YAML into items; YAML credentials become temporary auth files."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise BundleError(f"cannot read the image list: {getattr(e, 'strerror', None) or e}", path) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        document = None
    if isinstance(document, dict):
        return _read_sync_yaml(document, path, access, skopeo, stack)
    items = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()  # no reference holds a '#'
        if line:
            items.append(make_item(line, access, path))
    if not items:
        raise BundleError("the image list names no image", path)
    return items


def _read_sync_yaml(
    document: dict[Any, Any], path: Path, access: Access, skopeo: Skopeo, stack: contextlib.ExitStack
) -> list[Item]:
    items: list[Item] = []
    for host, section in document.items():
        if not isinstance(section, dict):
            raise BundleError(f"registry {host!s:.100}: expected a mapping (images:, tls-verify:, ...)", path)
        unknown = set(section) - {"images", "images-by-tag-regex", "tls-verify", "cert-dir", "credentials"}
        if unknown:
            raise BundleError(f"registry {host!s:.100}: unsupported keys {', '.join(sorted(map(str, unknown)))}", path)
        side = Access(
            access.authfile,
            bool(section.get("tls-verify", access.tls_verify)),
            Path(section["cert-dir"]) if section.get("cert-dir") else access.cert_dir,
        )
        credentials = section.get("credentials")
        if isinstance(credentials, dict) and credentials.get("username"):
            authfile = stack.enter_context(
                typed_credentials(str(host), str(credentials["username"]), str(credentials.get("password", "")))
            )
            side = Access(authfile, side.tls_verify, side.cert_dir)
        for repo, tags in (section.get("images") or {}).items():
            if tags is None or tags == []:
                tags = skopeo.list_tags(f"docker://{host}/{repo}", side)
            if not isinstance(tags, list):
                raise BundleError(f"{host}/{repo}: expected a list of tags", path)
            for tag in tags:
                sep = "@" if str(tag).startswith("sha256:") else ":"
                items.append(make_item(f"{host}/{repo}{sep}{tag}", side, path))
        for repo, pattern in (section.get("images-by-tag-regex") or {}).items():
            try:
                regex = re.compile(str(pattern))
            except re.error as e:
                raise BundleError(f"{host}/{repo}: bad tag pattern {pattern!s:.100}: {e}", path) from None
            for tag in skopeo.list_tags(f"docker://{host}/{repo}", side):
                if regex.search(tag):
                    items.append(make_item(f"{host}/{repo}:{tag}", side, path))
    if not items:
        raise BundleError("the skopeo-sync YAML names no image", path)
    return items


def _load_sources(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / SOURCES_FILE).read_text())
        images = data.get("images") if isinstance(data, dict) else None
        return dict(images) if isinstance(images, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_sources(folder: Path, images: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{SOURCES_FILE}.", dir=folder)
    with os.fdopen(fd, "w") as f:
        json.dump({"images": dict(sorted(images.items()))}, f, indent=2)
        f.write("\n")
    os.replace(tmp, folder / SOURCES_FILE)


def pull(
    list_path: Path,
    out: Path,
    *,
    platform: str = "all",
    access: Access | None = None,
    jobs: int | None = None,
    pack: bool = False,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    skopeo: Skopeo | None = None,
) -> PullResult:
    started = time.monotonic()
    cancel = cancel or threading.Event()
    tool = skopeo or Skopeo()
    base_access = access or Access()
    platform_args = _platform_args(platform)
    out = Path(os.path.abspath(out))
    archive = archive_format(out) is not None
    if archive:  # OUT.tar / OUT.tar.zst: packed storage written as one archive; refused before any pull if there
        check_archive_destination(out, None)
        pack = True
    with contextlib.ExitStack() as stack:
        items = read_list(list_path, base_access, tool, stack)
        by_name: dict[str, Item] = {}
        for item in items:
            known = by_name.setdefault(item.name, item)
            if known.source != item.source:
                raise BundleError(f"{known.source} and {item.source} would both become {item.name}", list_path)
        tree = Path(f"{out}.partial-pull") if pack else out
        tree.mkdir(parents=True, exist_ok=True)
        incoming = tree / ".regpack-incoming"
        shutil.rmtree(incoming, ignore_errors=True)  # halves of images a killed run was fetching
        incoming.mkdir()
        done_before = {**(_load_sources(out) if pack and not archive else {}), **_load_sources(tree)}
        lock = threading.Lock()
        sources = _load_sources(tree)
        meter = Meter(progress, 0, len(by_name), "pulling")

        def one(item: Item) -> PullOutcome:
            if cancel.is_set():
                raise Cancelled()
            recorded = done_before.get(item.name)
            if (
                isinstance(recorded, dict)
                and recorded.get("source") == f"docker://{item.source}"
                and recorded.get("platform") == platform
                and ((tree / item.name / "manifest.json").is_file() or pack)
            ):
                meter.add(0)
                return PullOutcome(item.name, item.source, "already there", str(recorded.get("digest", "")))
            staging = Path(tempfile.mkdtemp(dir=incoming))
            try:
                tool.copy(
                    f"docker://{item.source}",
                    f"dir:{staging / 'image'}",
                    src_access=item.access,
                    extra=platform_args,
                    what=f"pulling {item.source}",
                    cancel=cancel,
                )
                manifest = (staging / "image" / "manifest.json").read_bytes()
                digest = f"sha256:{hashlib.sha256(manifest).hexdigest()}"
                final = tree / item.name
                final.parent.mkdir(parents=True, exist_ok=True)
                with lock:
                    if final.exists():
                        shutil.rmtree(final)
                    os.rename(staging / "image", final)
                    sources[item.name] = {"source": f"docker://{item.source}", "digest": digest, "platform": platform}
                    _save_sources(tree, sources)
            except ToolError as e:
                meter.add(0)
                return PullOutcome(item.name, item.source, "failed", reason=e.reason)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            meter.add(len(manifest))
            return PullOutcome(item.name, item.source, "pulled", digest)

        try:
            with ThreadPoolExecutor(jobs or DEFAULT_JOBS) as pool:
                futures = [pool.submit(one, item) for item in by_name.values()]
                try:
                    outcomes = [f.result() for f in futures]
                except BaseException:
                    cancel.set()
                    for f in futures:
                        f.cancel()
                    raise
        finally:
            shutil.rmtree(incoming, ignore_errors=True)
        meter.finish()
        ok = all(o.status != "failed" for o in outcomes)
        if pack and ok:  # after a failure the staging tree stays for the rerun; nothing half-packed at OUT
            _pack_into(tree, out, sources, cancel)
    return PullResult(out, outcomes, time.monotonic() - started, pack and ok)


def _pack_into(tree: Path, out: Path, sources: dict[str, Any], cancel: threading.Event) -> None:
    """Pack the pulled tree into ``out`` (merged when it holds storage already), then drop the tree."""
    fresh = any(p.name != SOURCES_FILE and not p.name.startswith(".") for p in tree.iterdir())
    if archive_format(out) is not None:  # the archive holds the record of sources at its root, as storage does
        record = {"images": dict(sorted(sources.items()))}
        extra = {SOURCES_FILE: (json.dumps(record, indent=2) + "\n").encode()}
        pack_archive(tree, out, cancel=cancel, extra=extra)
        shutil.rmtree(tree)
        return
    if fresh:
        merge = out.exists() and any(out.iterdir())
        pack_job(tree, out, merge=merge, cancel=cancel)
    recorded = {**_load_sources(out), **sources}
    out.mkdir(parents=True, exist_ok=True)
    _save_sources(out, recorded)
    shutil.rmtree(tree)
