"""What every layout reader shares: safe file access inside an untrusted bundle, and building an Image.

Readers reach files only through a ``Tree``: the few operations they need (list a folder, check a file and
its size, read a small file or a manifest). ``SafeRoot`` is the tree of a folder on disk; an archive provides
one over its member index (layouts.archive), so a reader's logic exists once for both."""

from __future__ import annotations

import itertools
import operator
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import NamedTuple, Protocol

from regpack.bundle import NO_SIGNATURES, Bundle, Image, Locations, Role
from regpack.digest import Digest
from regpack.errors import BundleError, Code
from regpack.files import read_capped
from regpack.layouts._watch import next_image
from regpack.manifest import Descriptor, Manifest, SharedDescriptors, parse_manifest, read_manifest_bytes
from regpack.names import Reference


class FileStat(NamedTuple):
    """What readers need of a checked file's stat: kept per file of a big bundle, so only its size."""

    st_size: int


# Locators return plain absolute path strings: a big bundle has tens of thousands of files, and pathlib
# objects cost more to build than the lstat that checks them.
Locate = Callable[[Digest], str]


class Entry(Protocol):
    """What readers use of a folder entry (``os.DirEntry`` on disk)."""

    @property
    def name(self) -> str: ...

    @property
    def path(self) -> str: ...

    def is_dir(self, *, follow_symlinks: bool = True) -> bool: ...

    def is_symlink(self) -> bool: ...


class Tree(Protocol):
    """The files of a bundle as its readers see them. Paths are absolute names under ``root`` (plain strings
    or Paths); ``file`` returns the name under which a file is read afterwards and its size."""

    root: Path
    descriptors: SharedDescriptors

    def scan(self, folder: str) -> Sequence[Entry]:
        """The entries of a folder, sorted by name; FileNotFoundError when it is not there."""
        ...

    def listdir(self, folder: Path | str) -> list[str]:
        """Sorted names in a folder; empty when it is not there."""
        ...

    def is_dir(self, path: Path | str) -> bool: ...

    def lexists(self, path: Path | str) -> bool: ...

    def exists(self, path: Path | str) -> bool: ...

    def folder_inside(self, folder: str) -> bool: ...

    def trust_folders(self, parent: str, entries: Iterable[Entry]) -> None: ...

    def trust_listing(self, parent: str) -> None:
        """``trust_folders`` for a folder not listed yet (nothing when it cannot be listed)."""
        ...

    def file(self, path: Path | str, what: str) -> tuple[str, FileStat] | None: ...

    def read_plain(self, path: str, limit: int) -> bytes | None:
        """Up to ``limit + 1`` bytes of a plain small file, quickly; None when that is not simply possible
        (missing, a link, not a regular file), and the careful ``file`` + ``read_small`` say why."""
        ...

    def read_small(self, real: str, limit: int, what: str, path: Path | str) -> bytes: ...

    def read_manifest(self, real: str, image: str | None) -> bytes: ...

    def scope(self, folder: str) -> AbstractContextManager[None]:
        """A block that reads ``folder`` once (a repository): what the tree learnt of the folders under it is
        forgotten at its end."""
        ...


_BY_NAME = operator.attrgetter("name")
_new_tuple = tuple.__new__  # a FileStat without NamedTuple's Python-level __new__: one per blob reference
_OPEN_PLAIN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class SafeRoot:
    """Resolves files of an untrusted bundle on disk: a symlink (file or folder) is followed only inside the
    root. The ``Tree`` of a folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.real = Path(os.path.realpath(root))
        self._root_text = os.path.abspath(root)
        self._real_text = str(self.real)
        self._real_prefix = self._real_text.rstrip("/") + "/"
        # folder (absolute, as named) -> its real path; folders known to lie inside map to the same strings.
        self._dirs: dict[str, str] = {self._root_text: self._real_text}
        # listed folder (absolute, as named) -> names of its plain (not symlinked) sub-folders: a name per
        # folder rather than two full paths, since registry storage has a folder per blob.
        self._plain: dict[str, set[str]] = {}
        # Registry storage names one blob file from every image that uses it: check each file once. Kept per
        # file of a big bundle, so as its size alone when the file is where it is named (nearly always).
        self._files: dict[str, int | tuple[str, FileStat]] = {}
        # The folder of the last file checked, and its real path: files are checked folder by folder, and a
        # folder holding one file (a registry blob's) is not worth a place in _dirs.
        self._last_folder = ("", "")
        # The folder of the running ``scope``, as a prefix of what lies under it and as itself.
        self._scoped = ("\0", "\0")
        # One Descriptor per blob reference for the whole read (see parse_manifest).
        self.descriptors: SharedDescriptors = {}

    def inside(self, real: str) -> bool:
        return real == self._real_text or real.startswith(self._real_prefix)

    def helper_state(self) -> object:
        """What a tree read in a helper process learnt beyond its answers since it was last asked (see
        layouts._parallel), for ``merge_helper_state`` of the first process's tree; nothing for a plain folder."""
        return None

    def merge_helper_state(self, state: object) -> dict[str, str]:
        """Take in what the helper learnt; returns the file names now kept (each mapped to itself), which the
        replay then hands out instead of an equal new string."""
        return {}

    def forget_files(self, keep: int) -> None:
        """Forget the files checked so far once more than ``keep`` are remembered: a helper process's memory
        stays bounded, and a file asked for again is checked again."""
        if len(self._files) > keep:
            self._files.clear()

    def share_listings(self, other: SafeRoot, parents: Iterable[str]) -> None:
        """Take what ``other`` learnt of the listed folders ``parents`` (their plain sub-folders, their real
        paths), as it has it: a forked helper shares the parent's sets instead of listing the folders again."""
        for parent in parents:
            plain = other._plain.get(parent)
            if plain is not None:
                self._plain[parent] = plain
        self._dirs.update(other._dirs)

    def scan(self, folder: str) -> Sequence[Entry]:
        with os.scandir(folder) as listing:
            return sorted(listing, key=_BY_NAME)

    def listdir(self, folder: Path | str) -> list[str]:
        try:
            return sorted(os.listdir(folder))
        except FileNotFoundError:
            return []

    def is_dir(self, path: Path | str) -> bool:
        return os.path.isdir(path)

    def lexists(self, path: Path | str) -> bool:
        return os.path.lexists(path)

    def exists(self, path: Path | str) -> bool:
        return os.path.exists(path)

    def read_plain(self, path: str, limit: int) -> bytes | None:
        """One open that follows no symlink and never blocks, one read: no stat, since a FIFO, a device or a
        folder gives nothing a caller accepts either."""
        try:
            fd = os.open(path, _OPEN_PLAIN)
        except OSError:
            return None
        try:
            return os.read(fd, limit + 1)
        except OSError:
            return None
        finally:
            os.close(fd)

    def read_small(self, real: str, limit: int, what: str, path: Path | str) -> bytes:
        return read_small(real, limit, what, path)

    def read_manifest(self, real: str, image: str | None) -> bytes:
        return read_manifest_bytes(real, image)

    @contextmanager
    def scope(self, folder: str) -> Iterator[None]:
        # A repository's folders are read once; keeping them would cost more per image than the image itself.
        marks = len(self._dirs), len(self._plain)
        outer = self._scoped
        self._scoped = (folder.rstrip("/") + "/", folder)
        try:
            yield
        finally:
            self._scoped = outer
            prefix = folder.rstrip("/") + "/"
            for cache, mark in ((self._dirs, marks[0]), (self._plain, marks[1])):
                added = list(itertools.islice(reversed(cache.keys()), max(0, len(cache) - mark)))
                for key in added:
                    if key.startswith(prefix) or key == folder:
                        del cache[key]
            self._plain.pop(folder, None)  # listed before the block, by the walk that found the repository

    def trust_listing(self, parent: str) -> None:
        try:
            with os.scandir(parent) as listing:
                self.trust_folders(parent, listing)
        except OSError:
            pass

    def trust_folders(self, parent: str, entries: Iterable[Entry]) -> None:
        """Record the plain (not symlinked) sub-folders of a listed folder, so no lstat is needed for them.

        A big bundle has a folder per image or per blob: one listing of their parent replaces thousands of
        lstat calls. ``parent`` is an absolute folder name under the root.
        """
        self._real_dir(parent)
        plain = self._plain.setdefault(parent, set())
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                plain.add(entry.name)

    def _real_dir(self, folder: str, remember: bool = True) -> str:
        """Real path of a folder under the root, one lstat per folder thanks to the cache (its parents are
        always remembered; the folder itself unless ``remember`` is false)."""
        known = self._dirs.get(folder)
        if known is not None:
            return known
        parent, _, name = folder.rpartition("/")
        if not folder.startswith(self._root_text) or not parent:
            return os.path.realpath(folder)
        real_parent = self._real_dir(parent)
        plain = self._plain.get(parent)
        if plain is not None and name in plain:
            # Listed as a plain folder: its real path follows from its parent's, rebuilt rather than kept,
            # except in the folder read now (a repository), whose sub-folders are asked for again and again.
            real = folder if real_parent == parent else f"{real_parent}/{name}"
            if remember and (folder.startswith(self._scoped[0]) or folder == self._scoped[1]):
                self._dirs[folder] = real
            return real
        st = os.lstat(folder)
        if stat.S_ISLNK(st.st_mode):
            real = os.path.realpath(folder)
        else:
            real = folder if real_parent == parent else f"{real_parent}/{name}"
        if remember:
            self._dirs[folder] = real
        return real

    def folder_inside(self, folder: str) -> bool:
        """Whether ``folder`` (an existing folder under the root) really lies inside the bundle."""
        try:
            return self.inside(self._real_dir(folder))
        except OSError:
            return False

    def open_listed(self, path: str) -> tuple[int, int] | None:
        """A file not checked yet, in a folder its parent's listing showed as plain, inside the bundle: an open
        descriptor (no symbolic link followed, never blocking) and its size, from one open and one fstat
        instead of ``file``'s lstat and an open after it. None when it is not simply a regular file there
        (``file`` then says why). The file counts as checked, as ``file`` records it; the caller closes it."""
        if path in self._files:
            return None
        grand, _, folder = path.rpartition("/")[0].rpartition("/")
        plain = self._plain.get(grand)
        if plain is None or folder not in plain or self._dirs.get(grand) != grand or not self.inside(grand):
            return None
        try:
            fd = os.open(path, _OPEN_PLAIN)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode):
                self._files[path] = st.st_size
                return fd, st.st_size
        except OSError:
            pass
        os.close(fd)
        return None

    def file(self, path: Path | str, what: str) -> tuple[str, FileStat] | None:
        """(real path, stat) of a regular file, None when absent; BundleError when unsafe or not a file."""
        text = path if isinstance(path, str) and path[:1] == "/" else os.path.abspath(path)
        known = self._files.get(text)
        if known is not None:
            return (text, _new_tuple(FileStat, (known,))) if isinstance(known, int) else known
        parent, _, name = text.rpartition("/")
        try:
            real_parent = self._dirs.get(parent)
            if real_parent is None:
                last, last_real = self._last_folder
                if parent == last:
                    real_parent = last_real
                else:
                    real_parent = self._real_dir(parent, remember=False)
                    self._last_folder = (parent, real_parent)
            st = os.lstat(text)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise BundleError(f"cannot read {what}: {e.strerror or e}", path, code=Code.UNREADABLE) from None
        if not (real_parent.startswith(self._real_prefix) or real_parent == self._real_text):
            raise BundleError(
                f"{what} is in a folder that links outside the bundle (to {real_parent})", path, code=Code.UNSAFE
            )
        if stat.S_ISLNK(st.st_mode):
            real = os.path.realpath(text)
            if not self.inside(real):
                raise BundleError(
                    f"{what} is a symbolic link pointing outside the bundle (to {real})", path, code=Code.UNSAFE
                )
            try:
                st = os.stat(real)
            except OSError:
                raise BundleError(f"{what} is a dangling symbolic link", path, code=Code.MISSING) from None
        elif real_parent == parent:
            real = text
        else:
            real = f"{real_parent}/{name}"
        if not stat.S_ISREG(st.st_mode):
            raise BundleError(f"{what} is not a regular file", path)
        found = (real, FileStat(st.st_size))
        self._files[text] = st.st_size if real is text else found
        return found


def read_small(real: Path | str, limit: int, what: str, path: Path | str) -> bytes:
    """Read at most ``limit`` bytes of a small file (version, link, index), as a BundleError when it fails."""
    try:
        return read_capped(os.fspath(real), limit)[:limit]
    except OSError as e:
        raise BundleError(f"cannot read {what}: {e.strerror or e}", path, code=Code.UNREADABLE) from None


def build_image(
    bundle: Bundle,
    safe: Tree,
    reference: Reference,
    top_path: Path | str,
    locate_manifest: Locate,
    locate_blob: Locate,
    *,
    expected_digest: Digest | None = None,
    expected_size: int | None = None,
    folder: Path | None = None,
    signatures: dict[str, Path] | None = None,
) -> Image | None:
    """Read one image: its top manifest, every child manifest of a list (nested, loop-safe), every blob.

    Problems go to ``bundle.problems`` naming the image and file. Returns None only when the top manifest
    cannot be read at all; an image with a missing blob is still returned so it can be shown and verified.
    """
    next_image()  # the caller's progress and cancel (regpack.layouts.read)
    name = str(reference)
    try:
        found = safe.file(top_path, "manifest")
        if found is None:
            bundle.problem("manifest is missing", top_path, name, code=Code.MISSING_MANIFEST)
            return None
        real, _ = found
        top = parse_manifest(safe.read_manifest(real, name), top_path, name, shared=safe.descriptors)
    except BundleError as e:
        bundle.problem(e.reason, e.path or top_path, name, code=e.code_or(Code.BAD_MANIFEST))
        return None
    if expected_digest is not None and top.digest != expected_digest:
        bundle.problem(
            f"manifest bytes hash to {top.digest}, but the link names {expected_digest}",
            top_path,
            name,
            code=Code.DIGEST_MISMATCH,
        )
    if expected_size is not None and top.size != expected_size:
        bundle.problem(
            f"manifest is {top.size} bytes, its descriptor declares {expected_size}", top_path, name, code=Code.SIZE
        )
    locations: dict[Digest, str] = {top.digest: real}
    bundle.add_blob(top.digest, top.size, Role.MANIFEST, top.media_type, real)

    children: list[Manifest] = []
    # (list, digests of the lists above it): a child may appear twice (two platforms, one manifest), but a
    # list that contains itself, directly or further down, is a loop.
    pending: list[tuple[Manifest, frozenset[Digest]]] = [(top, frozenset({top.digest}))]
    visited = {top.digest}
    while pending:
        parent, ancestors = pending.pop(0)
        for desc in parent.children:
            if desc.digest in ancestors:
                bundle.problem(
                    f"manifest list {parent.digest} contains {desc.digest}, which contains it: a loop",
                    locations.get(parent.digest),
                    name,
                    code=Code.LOOP,
                )
                continue
            if desc.digest in visited:
                continue
            visited.add(desc.digest)
            path = locate_manifest(desc.digest)
            try:
                found = safe.file(path, "child manifest")
                if found is None:
                    bundle.problem(
                        f"platform manifest {desc.digest} named by the list is missing",
                        path,
                        name,
                        code=Code.MISSING_CHILD,
                    )
                    continue
                real, st = found
                child = parse_manifest(safe.read_manifest(real, name), path, name, desc.media_type, safe.descriptors)
            except BundleError as e:
                bundle.problem(e.reason, e.path or path, name, code=e.code_or(Code.BAD_MANIFEST))
                continue
            if child.digest != desc.digest:
                bundle.problem(
                    f"platform manifest bytes hash to {child.digest}, not {desc.digest}",
                    path,
                    name,
                    Code.DIGEST_MISMATCH,
                )
                continue
            if st.st_size != desc.size:
                bundle.problem(
                    f"platform manifest is {st.st_size} bytes, the list declares {desc.size}",
                    path,
                    name,
                    Code.SIZE,
                )
            locations[child.digest] = real
            bundle.add_blob(child.digest, child.size, Role.MANIFEST, child.media_type, real)
            children.append(child)
            if child.kind.is_list:
                pending.append((child, ancestors | {child.digest}))

    blobs = bundle.blobs
    for manifest in (top, *children):
        wanted: list[tuple[Role, Descriptor | None]] = [(Role.CONFIG, manifest.config)]
        wanted += [(Role.LAYER, d) for d in manifest.layers]
        for role, blob_ref in wanted:
            if blob_ref is None or blob_ref.digest in locations:
                continue
            path = locate_blob(blob_ref.digest)
            known = blobs.get(blob_ref.digest)
            if known is not None and known.file == path and known.role is not Role.MANIFEST:
                # Checked for an image before (registry storage and OCI layouts keep a blob in one file): what
                # the tree found then, without asking it again for each of the thousands of images sharing it.
                found = (path, _new_tuple(FileStat, (known.size,)))
            else:
                try:
                    found = safe.file(path, "blob")
                except BundleError as e:
                    code = Code.MISSING_BLOB if e.code == Code.MISSING else e.code_or(Code.UNSAFE)
                    bundle.problem(e.reason, e.path, name, code=code)
                    continue
            if found is None:
                expected = bundle.from_base.get(blob_ref.digest)
                if expected is not None:
                    if blob_ref.size >= 0 and expected != blob_ref.size:
                        bundle.problem(
                            f"{role.value} blob {blob_ref.digest} is {blob_ref.size} bytes in the manifest, "
                            f"the patch description expects {expected} from the base",
                            path,
                            name,
                            Code.SIZE,
                        )
                    bundle.add_blob(blob_ref.digest, expected, role, blob_ref.media_type, None, from_base=True)
                elif blob_ref.foreign:
                    bundle.add_blob(blob_ref.digest, max(blob_ref.size, 0), role, blob_ref.media_type, None)
                else:
                    bundle.problem(f"{role.value} blob {blob_ref.digest} is missing", path, name, Code.MISSING_BLOB)
                continue
            real, st = found
            if blob_ref.size >= 0 and st.st_size != blob_ref.size:
                bundle.problem(
                    f"{role.value} blob is {st.st_size} bytes, the manifest declares {blob_ref.size}",
                    path,
                    name,
                    code=Code.SIZE,
                )
                continue
            locations[blob_ref.digest] = real
            bundle.add_blob(blob_ref.digest, st.st_size, role, blob_ref.media_type, real)

    own = os.path.dirname(locations[top.digest]) if folder is not None else None  # a folder of its own copies
    files = Locations.of(locations, bundle.blobs, own)
    return Image(reference, top, tuple(children), files, folder, signatures or NO_SIGNATURES)
