"""Registry v2 storage, as the distribution registry keeps it under its root (FORMATS.md section 2).

The reader reaches files only through a ``Tree``: a folder on disk (SafeRoot) or an archive's member index."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from pathlib import Path

from regpack.bundle import Bundle, Image, Layout
from regpack.digest import Digest
from regpack.errors import BundleError, Code, Severity, quoted
from regpack.layouts import _parallel
from regpack.layouts._common import SafeRoot, Tree, build_image
from regpack.manifest import DOCKER_V1_SIGNED, Kind, read_manifest_bytes, schema1_unsigned
from regpack.names import Reference, valid_repository, valid_tag
from regpack.patch import DESCRIPTION, MAX_JSON_BYTES, PatchDescription
from regpack.plan import Plan, WriteFile, check_relative, new_folders

V2 = Path("docker", "registry", "v2")
_LINK = re.compile(rb"sha256:[0-9a-f]{64}")
MAX_LINK_BYTES = 512


def v2_root(path: Path, tree: Tree | None = None) -> Path | None:
    """The ``.../docker/registry/v2`` folder for a storage root, or for that folder itself."""
    path = Path(path)
    is_dir = tree.is_dir if tree is not None else os.path.isdir
    candidates = [path / V2] + ([path] if path.name == "v2" else [])
    for candidate in candidates:
        if is_dir(candidate / "repositories") or is_dir(candidate / "blobs"):
            return candidate
    return None


def detect(path: Path) -> bool:
    return v2_root(path) is not None


def link_text(digest: Digest) -> bytes:
    """A link file's exact content: the digest, no newline (the registry rejects a trailing one)."""
    return str(digest).encode()


def read_link(path: Path | str, safe: Tree) -> Digest:
    """Read a link file strictly: exactly ``sha256:<64 lowercase hex>``, nothing else."""
    found = safe.file(path, "link file")
    if found is None:
        raise BundleError("link file is missing", path)
    real, st = found
    if st.st_size > MAX_LINK_BYTES:
        raise BundleError(f"link file is {st.st_size} bytes, not a digest", path)
    return parse_link(safe.read_small(real, MAX_LINK_BYTES, "link file", path), path)


def parse_link(data: bytes, path: Path | str) -> Digest:
    if not _LINK.fullmatch(data):
        if data.rstrip(b"\r\n") != data and _LINK.fullmatch(data.rstrip(b"\r\n")):
            reason = "link file ends with a newline (the registry refuses it)"
        else:
            reason = f"link file does not hold a sha256 digest: {quoted(data)}"
        raise BundleError(reason, path)
    return Digest("sha256", data[7:].decode())


def repositories(v2: Path, bundle: Bundle | None = None, safe: Tree | None = None) -> list[tuple[str, str]]:
    """(name, absolute folder) of every repository: a folder with ``_manifests``; nested repositories included.
    Plain strings: a site's registry has a hundred thousand repositories.

    Symbolic links to folders are not followed (a received bundle is untrusted): each is reported. One
    listing per folder, which also tells ``safe`` which sub-folders are plain.
    """
    top = os.path.abspath(v2 / "repositories")
    found: list[tuple[str, str]] = []
    tree = safe if safe is not None else SafeRoot(storage_root(v2))
    if not tree.is_dir(top):
        return found
    pending = [top]
    while pending:
        folder = pending.pop()
        try:
            entries = tree.scan(folder)
        except OSError as e:
            if bundle is not None:
                where = Path(e.filename or folder)
                bundle.problem(f"cannot list folder: {e.strerror or e}", where, None, Code.UNREADABLE)
            continue
        if safe is not None:
            safe.trust_folders(folder, entries)
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if entry.name == "_manifests":
                    found.append((folder[len(top) + 1 :], folder))
                elif not entry.name.startswith("_"):
                    pending.append(entry.path)
            elif entry.is_symlink() and entry.is_dir() and bundle is not None:
                bundle.problem(
                    "folder is a symbolic link; not followed in a received bundle", Path(entry.path), code=Code.UNSAFE
                )
    found.sort(key=lambda item: item[0].split("/"))
    return found


def read(path: Path, tree: Tree | None = None, *, parallel: bool | None = None) -> Bundle:
    """The storage at ``path``: a folder on disk, or with ``tree`` the files of an archive (``path`` is then
    the name the tree gives the storage root).

    A big storage on disk is read by two processes (layouts._parallel) when there are cores for them;
    ``parallel`` forces that (True) or forbids it (False), whatever the size."""
    path = Path(path)
    v2 = v2_root(path, tree)
    bundle = Bundle(path, Layout.REGISTRY)
    if v2 is None:
        bundle.problem("not a registry storage folder (no docker/registry/v2)", path, code=Code.EMPTY)
        return bundle
    safe = tree if tree is not None else SafeRoot(path)
    description = read_description(v2, safe if v2 == path / V2 else None, bundle)
    if description is not None:
        bundle.is_patch = True
        bundle.from_base = dict(description.needed)
    blob_folders = _BlobFolders(safe, os.path.abspath(v2))
    has_signatures = safe.is_dir(path / SIGNATURES)
    found = repositories(v2, bundle, safe)
    helper = _helper(safe, blob_folders, found, has_signatures, parallel)
    try:
        for index, (name, repo_dir) in enumerate(found):
            if not valid_repository(name):
                bundle.problem(f"invalid repository name {quoted(name, 300)}", repo_dir, code=Code.BAD_NAME)
                continue
            answers = helper.answers(index) if helper is not None else None
            tree = safe if answers is None else _parallel.Replay(safe, answers)
            with safe.scope(repo_dir):  # also forgets the walk's listing of the folder
                _read_repository(bundle, tree, name, repo_dir, blob_folders, has_signatures)
        if helper is not None:
            helper.finish()
    finally:
        if helper is not None:
            helper.close()
    if not bundle.images and not bundle.problems:
        bundle.problem("registry storage holds no tagged image", v2, code=Code.EMPTY)
    return bundle


def _helper(
    safe: Tree, blob_folders: _BlobFolders, found: list[tuple[str, str]], has_signatures: bool, parallel: bool | None
) -> _parallel.Helper | None:
    """The second process reading a share of the repositories, when it is worth starting: a big storage, two
    cores, and a process with one thread (the command line), which alone may fork safely."""
    if parallel is False or not isinstance(safe, SafeRoot):
        return None
    if parallel is None:
        from regpack.layouts import _single_threaded

        if len(found) < _parallel.MIN_REPOSITORIES or _parallel.usable_cpus() < 2 or not _single_threaded():
            return None
    jobs = [
        (index, name, repo_dir)
        for index in sorted(_parallel.helper_blocks(len(found)))
        for name, repo_dir in (found[index],)
        if valid_repository(name)
    ]
    if not jobs:
        return None
    blob_folders.list_all()  # once, for both processes
    return _parallel.Helper(safe, blob_folders, jobs, has_signatures)


def storage_root(v2: Path) -> Path:
    """The folder holding ``docker/registry/v2``."""
    return Path(v2).parent.parent.parent


def read_description(v2: Path, safe: Tree | None = None, bundle: Bundle | None = None) -> PatchDescription | None:
    """The patch description at the storage root, None when the storage is not a patch.

    A damaged description is an error of the bundle (reported in ``bundle`` when given, raised otherwise):
    without it, the blobs expected from the base would look missing.
    """
    path = storage_root(v2) / DESCRIPTION
    if not (safe.lexists(path) if safe is not None else os.path.lexists(path)):
        return None
    try:
        tree = safe or SafeRoot(storage_root(v2))
        found = tree.file(path, "patch description")
        if found is None:
            return None
        return PatchDescription.parse(tree.read_small(found[0], MAX_JSON_BYTES, "patch description", path), path)
    except BundleError as e:
        if bundle is None:
            raise
        bundle.problem(e.reason, e.path or path, code=e.code_or(Code.BAD_PATCH))
        return None


def _read_links(bundle: Bundle, safe: Tree, name: str, folder: str, kind: str) -> set[Digest]:
    """Digests of ``<folder>/<hex>/link`` files (revisions or layers), each checked against its folder name.

    A storage holds a link per blob per repository, tens of thousands in a big bundle: a plain folder entry is
    read with one open (no symlink followed, no blocking on a FIFO) and one read, and a link that holds exactly
    its folder's digest is taken as it is; anything unusual takes the careful path of read_link, which says
    exactly what is wrong.
    """
    found: set[Digest] = set()
    try:
        entries = safe.scan(folder)
    except FileNotFoundError:
        return found
    except OSError as e:
        bundle.problem(f"cannot list folder: {e.strerror or e}", folder, code=Code.UNREADABLE, repository=name)
        return found
    if entries and not safe.folder_inside(folder):
        bundle.problem("folder links outside the bundle; not read", folder, code=Code.UNSAFE, repository=name)
        return found
    read_plain, fullmatch, add = safe.read_plain, _LINK.fullmatch, found.add
    for entry in entries:
        hex_ = entry.name
        link = f"{folder}/{hex_}/link"
        plain_folder = entry.is_dir(follow_symlinks=False)
        if plain_folder:
            data = read_plain(link, MAX_LINK_BYTES)
            if data is not None and fullmatch(data) and data[7:].decode() == hex_:
                add(_sha256(hex_))  # the usual case: the folder's own digest, nothing more to say
                continue
        try:
            digest = _read_plain_link(safe, link) if plain_folder else None
            if digest is None:
                if plain_folder and not safe.lexists(link):
                    # A delete through the registry API removes only the link: the registry treats the
                    # folder left behind as absent, and so does every reader here.
                    continue
                digest = read_link(link, safe)
        except BundleError as e:
            bundle.problem(e.reason, e.path, code=e.code_or(Code.BAD_LINK), repository=name)
            continue
        if digest.hex != hex_:
            bundle.problem(
                f"{kind} link names {digest}, its folder says {quoted(hex_)}",
                link,
                code=Code.BAD_LINK,
                repository=name,
            )
            continue
        add(digest)
    return found


def _sha256(hex_: str) -> Digest:
    """The Digest of a link checked to hold exactly ``sha256:<hex_>``, without the named tuple's Python ``__new__``."""
    return _new_tuple(Digest, ("sha256", hex_))


_new_tuple = tuple.__new__


def _read_plain_link(safe: Tree, link: str) -> Digest | None:
    """The digest in a link file that holds exactly one; None for anything else (missing, a symbolic link, not
    a regular file, other content), and then the careful read_link says what is wrong."""
    data = safe.read_plain(link, MAX_LINK_BYTES)
    return _sha256(data[7:].decode()) if data is not None and _LINK.fullmatch(data) else None


class _BlobFolders:
    """Lists ``blobs/<algorithm>/<xx>/`` once, the first time a blob under it is needed.

    A storage of thousands of blobs has a folder per blob: one listing of their parent tells which are plain
    folders, where checking each for a symbolic link would cost an lstat.
    """

    def __init__(self, safe: Tree, v2: str, listed: set[str] | None = None) -> None:
        self.safe = safe
        self.v2 = v2
        self.listed: set[str] = listed if listed is not None else set()

    def list_all(self) -> None:
        """List every ``blobs/<algorithm>/<xx>/`` now (a forked helper then shares what was learnt). Only what
        the listings say of plain folders is kept; whatever is odd there is reported for the blob that needs it."""
        blobs = f"{self.v2}/blobs"
        try:
            parents = [f"{blobs}/{a}/{x}" for a in self.safe.listdir(blobs) for x in self.safe.listdir(f"{blobs}/{a}")]
        except OSError:
            return
        for parent in parents:
            if parent not in self.listed:
                self.listed.add(parent)
                self.safe.trust_listing(parent)

    def locate(self, digest: Digest) -> str:
        parent = f"{self.v2}/blobs/{digest.algorithm}/{digest.hex[:2]}"
        if parent not in self.listed:
            self.listed.add(parent)
            self.safe.trust_listing(parent)  # a missing or unreadable folder is reported for the blob that needs it
        return f"{parent}/{digest.hex}/data"


def _read_repository(
    bundle: Bundle, safe: Tree, name: str, repo_dir: str, blob_folders: _BlobFolders, has_signatures: bool
) -> None:
    repo_text = os.path.abspath(repo_dir)
    revisions = _read_links(bundle, safe, name, f"{repo_text}/_manifests/revisions/sha256", "revision")
    layers = _read_links(bundle, safe, name, f"{repo_text}/_layers/sha256", "layer")

    locate = blob_folders.locate
    tagged: set[Digest] = set()
    reached: set[Digest] = set()
    tags_text = f"{repo_text}/_manifests/tags"
    for tag in _tags(safe, tags_text):
        ref = f"{name}:{tag}"
        if not valid_tag(tag):
            bundle.problem(f"invalid tag {quoted(tag, 200)}", f"{tags_text}/{tag}", ref, code=Code.BAD_NAME)
            continue
        tag_dir = f"{tags_text}/{tag}"
        current = f"{tag_dir}/current/link"
        # The usual link (a plain file holding a digest, in folders that lie inside) in one open and one read;
        # read_link says what is wrong with any other.
        digest = _read_plain_link(safe, current) if safe.folder_inside(f"{tag_dir}/current") else None
        try:
            digest = digest or read_link(current, safe)
        except BundleError as e:
            bundle.problem(e.reason, e.path, ref, code=e.code_or(Code.BAD_LINK))
            continue
        if digest not in revisions:
            bundle.problem(
                f"tag points at {digest}, which has no revision link in {name} (the registry would answer 404)",
                current,
                ref,
                code=Code.MISSING_REVISION,
            )
            continue
        index_link = f"{tag_dir}/index/sha256/{digest.hex}/link"
        if not safe.exists(index_link):
            bundle.problem("tag index link is missing", index_link, ref, Code.BAD_LINK, Severity.WARNING)
        reference = Reference(name, tag)
        image = build_image(
            bundle,
            safe,
            reference,
            locate(digest),
            locate,
            locate,
            expected_digest=digest,
            signatures=_signatures(bundle, safe, reference) if has_signatures else None,
        )
        if image is not None:
            _check_repo_links(bundle, image, name, revisions, layers, repo_dir)
            _check_schema1_unsigned(bundle, image)
            bundle.images.append(image)
            tagged.add(digest)
            reached.update(m.digest for m in image.manifests)

    # A revision no tag reaches (directly or as a platform of a list) is kept as a digest reference, so a
    # bundle of digest-pinned images survives a round trip. A live registry also keeps old revisions whose
    # data may be gone: those are reported as warnings and skipped, they must not block the tagged images.
    untagged: list[Image] = []
    for digest in sorted(revisions - reached):
        mark = len(bundle.problems)
        image = build_image(
            bundle, safe, Reference(name, None, digest), locate(digest), locate, locate, expected_digest=digest
        )
        if image is not None:
            _check_repo_links(bundle, image, name, revisions, layers, repo_dir)
            _check_schema1_unsigned(bundle, image)
        new = bundle.problems[mark:]
        if any(p.severity is Severity.ERROR for p in new):
            del bundle.problems[mark:]
            first = new[0]
            bundle.problem(
                f"untagged revision skipped: {first.reason}", first.path, first.image, first.code, Severity.WARNING
            )
            continue
        if image is not None:
            untagged.append(image)
    platforms = {m.digest for img in untagged for m in img.children} | reached
    bundle.images.extend(img for img in untagged if img.digest not in platforms)


def _tags(safe: Tree, folder: str) -> list[str]:
    """The tag names under ``_manifests/tags`` (none when it is not there); the listing also tells ``safe``
    which tag folders are plain, so checking each one's ``current`` folder needs no look at the tag's own."""
    try:
        entries = safe.scan(folder)
    except FileNotFoundError:
        return []
    safe.trust_folders(folder, entries)
    return [entry.name for entry in entries]


def _signatures(bundle: Bundle, safe: Tree, reference: Reference) -> dict[str, Path]:
    folder = bundle.root / SIGNATURES / str(reference)
    found: dict[str, Path] = {}
    for entry in safe.listdir(folder) if safe.is_dir(folder) else []:
        try:
            hit = safe.file(folder / entry, "signature")
        except BundleError as e:
            bundle.problem(e.reason, e.path, str(reference), code=Code.UNSAFE)
            continue
        if hit is not None:
            found[entry] = Path(hit[0])
    return found


def _check_schema1_unsigned(bundle: Bundle, image: Image) -> None:
    """The registry stores a schema1 manifest unsigned and signs it when serving; signed bytes in storage are
    served signed twice, and a pull by digest fails."""
    for manifest in image.manifests:
        if manifest.kind is Kind.SCHEMA1 and manifest.media_type == DOCKER_V1_SIGNED:
            bundle.problem(
                "schema1 manifest is stored with its signatures; the registry keeps only the unsigned payload "
                "(it signs it when serving: these bytes would be served signed twice and fail a pull by digest)",
                image.locations.get(manifest.digest),
                image.name,
                code=Code.SCHEMA1_SIGNED,
            )


def _check_repo_links(
    bundle: Bundle, image: Image, name: str, revisions: set[Digest], layers: set[Digest], repo_dir: str
) -> None:
    """The registry serves a blob or child manifest only when THIS repository links it."""
    for child in image.children:
        if child.digest not in revisions:
            bundle.problem(
                f"platform manifest {child.digest} has no revision link in {name}",
                f"{repo_dir}/_manifests/revisions/sha256/{child.digest.hex}/link",
                image.name,
                code=Code.MISSING_LINK,
            )
    for digest in image.blob_digests():
        blob = bundle.blobs.get(digest)
        if blob is not None and blob.file is None and not blob.from_base:
            continue  # a foreign layer that is not stored needs no link
        if digest not in layers:
            bundle.problem(
                f"blob {digest} has no _layers link in {name} (the registry would answer 404)",
                f"{repo_dir}/_layers/sha256/{digest.hex}/link",
                image.name,
                code=Code.MISSING_LINK,
            )


# Signatures of skopeo dir images have no place in registry storage; they travel beside it, per image folder.
SIGNATURES = "regpack-signatures"


def plan_pack(bundle: Bundle) -> Plan:
    """Registry storage for every image of ``bundle``: each blob once, every link the registry needs."""
    plan = Plan(images=len(bundle.images))
    v2 = V2.as_posix()
    for image in bundle.images:
        name = image.name
        for manifest in image.manifests:
            digest = manifest.digest
            if manifest.kind is Kind.SCHEMA1:
                # The registry keeps a schema1 manifest's unsigned payload (its digest covers just that) and
                # signs it when serving: stored signed, it would be served signed twice.
                location = image.locations[digest]
                plan.write(_blob_rel(v2, digest), schema1_unsigned(read_manifest_bytes(location, name), location, name))
            else:
                plan.place(image.locations[digest], _blob_rel(v2, digest), manifest.size, name)
        for blob, location in bundle.stored_blobs(image):
            plan.place(location, _blob_rel(v2, blob.digest), blob.size, name)
        for file_name, src in image.signatures.items():
            plan.place(src, f"{SIGNATURES}/{image.reference.stored}/{file_name}", src.stat().st_size, name)
    plan.add_group(RepositoryLinks(bundle, v2))
    return plan


class RepositoryLinks:
    """Every link file of the storage's repositories, made from the bundle's images when the plan runs.

    A repository's links are its manifests' revisions, its blobs' ``_layers`` links (a patch's blobs that its
    base holds too) and its tags (``current`` and the tag's index), each once however many of its images name
    it. Kept: the bundle and its images in order of repository (8 bytes an image), not a name per link file (a
    plan of 100,000 images would hold about a million). Walked once here to count them and to refuse a tag two
    images claim, before anything is written.
    """

    __slots__ = ("_bundle", "_images", "files", "prefix", "total_bytes")

    def __init__(self, bundle: Bundle, v2: str) -> None:
        self._bundle = bundle
        self.prefix = f"{v2}/repositories/"
        # Stable: a repository's images keep the bundle's order, so a clash names the same image as in order.
        self._images = tuple(sorted(bundle.images, key=_repository))
        files = size = 0
        for _, revisions, layers, tags in self._repositories():
            files += len(revisions) + len(layers) + 2 * len(tags)
            size += sum(_link_size(d) for d in itertools.chain(revisions, layers))
            size += 2 * sum(_link_size(top) for top, _ in tags.values())
        self.files, self.total_bytes = files, size

    def _repositories(self) -> Iterator[tuple[str, dict[Digest, None], dict[Digest, None], dict[str, _Tag]]]:
        """Per repository, its folder and what it links: revisions, blobs, tags (each once, in order)."""
        blobs = self._bundle.blobs
        with_base = bool(self._bundle.from_base)
        for repository, images in itertools.groupby(self._images, key=_repository):
            repo = f"{self.prefix}{repository}"
            check_relative(repo)
            revisions: dict[Digest, None] = {}
            layers: dict[Digest, None] = {}
            tags: dict[str, _Tag] = {}
            for image in images:
                for manifest in image.manifests:
                    revisions[manifest.digest] = None
                for digest in image.blob_digests():
                    blob = blobs.get(digest)
                    # Stored blobs, and a patch's blobs that its base holds; an absent foreign layer has no link.
                    if blob is not None and (blob.file is not None or (with_base and blob.from_base)):
                        layers[digest] = None
                tag = image.tag
                if tag is None:
                    continue
                known = tags.setdefault(tag, (image.digest, image.name))
                if known[0] != image.digest:
                    raise BundleError(
                        f"conflicting content for {repo}/_manifests/tags/{tag}/current/link: two images claim it "
                        f"({quoted(link_text(known[0]))} vs {quoted(link_text(image.digest))})",
                        None,
                        image.name,
                    )
                check_relative(f"{repo}/_manifests/tags/{tag}")
            yield repo, revisions, layers, tags

    def __iter__(self) -> Iterator[WriteFile]:
        for repository in self._repositories():
            for name, digest in _links(*repository):
                yield WriteFile(name, link_text(digest))

    def directories(self) -> Iterator[str]:
        """The folders of the links, repository by repository: a repository's own folders are its alone, so
        only the repositories' folders (nested names share their parents) are remembered for the whole plan, and
        a repository's inside for as long as it is listed."""
        top = self.prefix.rstrip("/")
        repositories: set[str] = set()
        for repository in self._repositories():
            repo = repository[0]
            yield from new_folders(repo + "/.", repositories, top)
            inside: set[str] = set()
            for name, _ in _links(*repository):
                yield from new_folders(name, inside, repo)


_Tag = tuple[Digest, str]  # a tag's top manifest, and the image that named it first


def _links(
    repo: str, revisions: dict[Digest, None], layers: dict[Digest, None], tags: dict[str, _Tag]
) -> Iterator[tuple[str, Digest]]:
    """Each link file of a repository and the digest it holds."""
    for digest in revisions:
        yield f"{repo}/_manifests/revisions/{digest.algorithm}/{digest.hex}/link", digest
    for digest in layers:
        yield f"{repo}/_layers/{digest.algorithm}/{digest.hex}/link", digest
    for tag, (top, _) in tags.items():
        folder = f"{repo}/_manifests/tags/{tag}"
        yield f"{folder}/current/link", top
        yield f"{folder}/index/{top.algorithm}/{top.hex}/link", top


def _repository(image: Image) -> str:
    return image.repository


def _link_size(digest: Digest) -> int:
    return len(digest.algorithm) + 1 + len(digest.hex)


def blob_rel(digest: Digest) -> str:
    """Where a blob's data is, relative to the storage root."""
    return _blob_rel(V2.as_posix(), digest)


def _blob_rel(v2: str, digest: Digest) -> str:
    return f"{v2}/blobs/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}/data"
