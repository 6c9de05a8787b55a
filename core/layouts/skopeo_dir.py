"""skopeo ``dir:`` trees: one folder per image, found anywhere below the bundle root (FORMATS.md section 1)."""

from __future__ import annotations

import contextlib
import os
import re
import stat
from pathlib import Path

from regpack.bundle import Bundle, Image, Layout
from regpack.digest import Digest
from regpack.errors import BundleError, Code, Severity, quoted
from regpack.layouts._common import SafeRoot, build_image, read_small
from regpack.manifest import DOCKER_V1, Kind, read_manifest_bytes
from regpack.names import Reference, parse_folder_reference, unpack_folder
from regpack.plan import LOST_AND_FOUND, STAGING_INSIDE, Plan

VERSION_PREFIX = b"Directory Transport Version: "
VERSION_1_0 = b"Directory Transport Version: 1.0\n"
VERSION_1_1 = b"Directory Transport Version: 1.1\n"
VERSION_1_2 = b"Directory Transport Version: 1.2\n"
KNOWN_VERSIONS = {VERSION_1_0: "1.0", VERSION_1_1: "1.1", VERSION_1_2: "1.2"}
_SIGNATURE = re.compile(r"(?:[0-9a-f]{64}\.)?signature-[1-9][0-9]*")


def detect(path: Path) -> bool:
    """Whether any folder below ``path`` holds manifest.json; stops at the first one."""
    if (Path(path) / "manifest.json").exists():
        return True
    for _, dirnames, filenames in os.walk(path, followlinks=False):
        if "manifest.json" in filenames:
            return True
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
    return False


def _image_folders(
    root: Path, bundle: Bundle | None, safe: SafeRoot | None = None
) -> list[tuple[str, list[str] | None]]:
    """Every folder (absolute name) holding manifest.json, with its file names when listed already; not
    descending into image or hidden folders.

    A symbolic link to a folder is followed only when it stays inside the bundle (an alias such as
    ``node:latest -> node:v1``); one pointing outside, or a folder that cannot be listed, is reported.
    One listing per folder: the listing of a folder also tells ``safe`` which of its sub-folders are plain.
    """
    top = os.path.abspath(root)
    if os.path.lexists(f"{top}/manifest.json"):
        return [(top, None)]
    real_root = os.path.realpath(top)
    found: list[tuple[str, list[str] | None]] = []
    pending = [top]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError as e:
            if bundle is not None:
                where = Path(e.filename or folder)
                bundle.problem(f"cannot list folder: {e.strerror or e}", where, None, Code.UNREADABLE)
            continue
        names = [entry.name for entry in entries]
        if "manifest.json" in names:
            found.append((folder, names))
            if bundle is not None:
                _report_nested_images(bundle, top, folder, entries)
            continue
        if "version" in names and bundle is not None:
            _report_half_written(bundle, top, folder, names)
        if safe is not None:
            safe.trust_folders(folder, entries)
        for entry in entries:
            if entry.name.startswith(".") or (entry.name == LOST_AND_FOUND and folder == top and os.path.ismount(top)):
                continue
            if entry.is_dir(follow_symlinks=False):
                pending.append(entry.path)
            elif entry.is_symlink() and entry.is_dir():
                real = os.path.realpath(entry.path)
                if not (real + "/").startswith(real_root.rstrip("/") + "/"):
                    if bundle is not None:
                        bundle.problem(
                            f"folder is a symbolic link pointing outside the bundle (to {real}); not followed",
                            Path(entry.path),
                            code=Code.UNSAFE,
                        )
                elif os.path.isfile(f"{entry.path}/manifest.json"):
                    found.append((entry.path, None))
    found.sort(key=lambda item: item[0].split("/"))  # the order of path components, as a tree shows them
    return found


def _label(top: str, folder: str) -> str:
    return folder[len(top) + 1 :] if folder != top else os.path.basename(top)


def _report_nested_images(bundle: Bundle, top: str, folder: str, entries: list[os.DirEntry[str]]) -> None:
    """An image folder inside an image folder cannot be carried: skopeo writes one image per folder and no
    sub-folders, and the inner one has no repository name. Reported as an error, never skipped in silence."""
    pending = [e.path for e in entries if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)]
    while pending:
        inner = pending.pop()
        try:
            with os.scandir(inner) as listing:
                below = list(listing)
        except OSError:
            continue
        if any(e.name in ("manifest.json", "version") for e in below):
            bundle.problem(
                f"image folder inside the image folder {_label(top, folder)}: not read (skopeo keeps one image "
                "per folder; move it out to a folder of its own)",
                inner,
                _label(top, inner),
                code=Code.NESTED_IMAGE,
            )
            continue
        pending.extend(e.path for e in below if not e.name.startswith(".") and e.is_dir(follow_symlinks=False))


def _report_half_written(bundle: Bundle, top: str, folder: str, names: list[str]) -> None:
    """A folder holding skopeo's ``version`` but no ``manifest.json``: a copy that did not finish (skopeo writes
    the manifest last; ``skopeo sync --keep-going`` leaves such folders after a failure). No image to carry, so
    a warning naming it, not an error."""
    try:
        fd = os.open(f"{folder}/version", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return  # a symbolic link or anything unusual is not skopeo's
    try:
        head = os.read(fd, len(VERSION_PREFIX)) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    except OSError:
        return
    finally:
        os.close(fd)
    if head != VERSION_PREFIX:
        return
    others = len(names) - 1
    bundle.problem(
        f"image folder holds no manifest.json ({'only version' if not others else f'version and {others} more files'}):"
        " a copy that did not finish, as skopeo sync --keep-going leaves after a failure; not carried (copy the "
        "image again, or remove the folder)",
        folder,
        _label(top, folder),
        code=Code.INCOMPLETE_IMAGE,
        severity=Severity.WARNING,
    )


def blob_file_name(digest: Digest, version: str) -> str:
    if digest.algorithm != "sha256":
        return f"{digest.algorithm}-{digest.hex}"
    return f"{digest.hex}.tar" if version == "1.0" else digest.hex


def manifest_file_name(digest: Digest) -> str:
    if digest.algorithm != "sha256":
        return f"{digest.algorithm}-{digest.hex}.manifest.json"
    return f"{digest.hex}.manifest.json"


def read_version(folder: Path | str, bundle: Bundle, image: str, safe: SafeRoot) -> str:
    path = f"{folder}/version"
    # Nearly always a plain file holding a known version: one open (no symbolic link followed) and one read.
    # Anything else (missing, a link, not a file, unknown text) takes the careful way, which says what it is.
    version = KNOWN_VERSIONS.get(safe.read_plain(path, 64) or b"")
    if version is not None:
        return version
    try:
        found = safe.file(path, "version file")
    except BundleError as e:
        bundle.problem(e.reason, path, image, code=Code.BAD_VERSION)
        return "1.1"
    if found is None:
        return "1.1"  # skopeo itself treats a missing version file as the current format
    real, st = found
    if st.st_size > 64:
        bundle.problem(f"version file is {st.st_size} bytes, not a skopeo dir version", path, image, Code.BAD_VERSION)
        return "1.1"
    try:
        data = read_small(real, 64, "version file", path)
    except BundleError as e:
        bundle.problem(e.reason, path, image, code=e.code)
        return "1.1"
    version = KNOWN_VERSIONS.get(data)
    if version is None:
        bundle.problem(
            f"unknown skopeo dir version {quoted(data, 40)} (expected {quoted(VERSION_1_1)})",
            path,
            image,
            code=Code.BAD_VERSION,
        )
        return "1.1"
    return version


def read(root: Path, top_name: str | None = None) -> Bundle:
    """The dir tree at ``root``; ``top_name`` stands for the folder's name of an image at its top (an archive's)."""
    root = Path(root)
    bundle = Bundle(root, Layout.SKOPEO_DIR)
    safe = SafeRoot(root)
    top = os.path.abspath(root)
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir(top)):
            if name.startswith(STAGING_INSIDE):
                bundle.problem(
                    "unfinished output of a regpack run that is still at work or was interrupted while moving it "
                    "into place; some images may be missing (remove the folder's content and run again)",
                    f"{top}/{name}",
                    code=Code.UNFINISHED,
                )
    for folder, names in _image_folders(root, bundle, safe):
        relative = folder[len(top) + 1 :] if folder != top else (top_name or root.name)
        try:
            reference = parse_folder_reference(relative, folder)
        except BundleError as e:
            bundle.problem(e.reason, folder, relative, code=Code.BAD_NAME)
            continue
        image = read_image_folder(bundle, safe, folder, reference, names)
        if image is not None:
            bundle.images.append(image)
    if not bundle.images and not bundle.problems:
        bundle.problem("no image folders (folders holding manifest.json) found", root, code=Code.EMPTY)
    return bundle


def read_image_folder(
    bundle: Bundle, safe: SafeRoot, folder: Path | str, reference: Reference, names: list[str] | None = None
) -> Image | None:
    """One image folder (an absolute name, or a Path); ``names`` are its file names when the caller listed it
    already. Names stay strings while reading: a big bundle has a folder per image, and a Path costs more to
    build than reading the folder's version file."""
    name = str(reference)
    base = folder if isinstance(folder, str) else os.path.abspath(folder)
    version = read_version(base, bundle, name, safe)
    signatures: dict[str, Path] = {}
    try:
        entries = names if names is not None else os.listdir(folder)
    except OSError as e:
        bundle.problem(f"cannot list image folder: {e.strerror or e}", folder, name, code=Code.UNREADABLE)
        return None
    for entry in sorted(e for e in entries if "signature-" in e):  # a substring test before the pattern
        if _SIGNATURE.fullmatch(entry):
            try:
                found = safe.file(f"{base}/{entry}", "signature")
            except BundleError as e:
                bundle.problem(e.reason, e.path, name, code=Code.UNSAFE)
                continue
            if found is not None:
                signatures[entry] = Path(found[0])
    image = build_image(
        bundle,
        safe,
        reference,
        f"{base}/manifest.json",
        lambda d: f"{base}/{manifest_file_name(d)}",
        lambda d: f"{base}/{blob_file_name(d, version)}",
        folder=Path(base),
        signatures=signatures,
    )
    if image is not None and reference.digest is not None and image.digest != reference.digest:
        bundle.problem(
            f"folder is named for {reference.digest} but manifest.json hashes to {image.digest}",
            f"{base}/manifest.json",
            name,
            code=Code.DIGEST_MISMATCH,
        )
    return image


def plan_unpack(bundle: Bundle) -> Plan:
    """A skopeo dir tree: ``<repository>:<tag>/`` (or ``<repository>@<digest>/``) per image, as skopeo writes;
    no host (see names.unpack_folder). Images that would share a folder are refused before this (selection)."""
    plan = Plan(images=len(bundle.images))
    for image in bundle.images:
        name = image.name
        folder = unpack_folder(image.reference)
        digests = image.all_digests()
        version = VERSION_1_1 if all(d.algorithm == "sha256" for d in digests) else VERSION_1_2
        plan.write(f"{folder}/version", version, name)
        for manifest in image.manifests:
            file_name = "manifest.json" if manifest is image.manifest else manifest_file_name(manifest.digest)
            location = image.locations[manifest.digest]
            if manifest.kind is Kind.SCHEMA1 and manifest.media_type == DOCKER_V1:
                # Stored unsigned (registry storage): signed as the registry signs it when skopeo pulls it.
                from regpack.jws import sign_schema1  # rare; cryptography costs start-up time everywhere else

                payload = read_manifest_bytes(location, name)
                plan.write(f"{folder}/{file_name}", sign_schema1(payload, location, name), name)
            else:
                plan.place(location, f"{folder}/{file_name}", manifest.size, name)
        for blob, location in bundle.stored_blobs(image):
            plan.place(location, f"{folder}/{blob_file_name(blob.digest, '1.1')}", blob.size, name)
        for file_name, signature in image.signatures.items():
            plan.place(signature, f"{folder}/{file_name}", signature.stat().st_size, name)
    return plan
