"""Bad bundles on demand: a tiny generator of good bundles in the three layouts, and ways to break them.

The good bundles are small but real: every blob is bytes hashing to its digest, four images share a base
layer, one of them is a multi-arch list whose platform manifests sit beside it as ``<hex>.manifest.json``.
Registry storage is made by ``regpack.jobs.pack`` from the skopeo dir tree; the OCI layout is written here.

Each ``Case`` builds one bundle in a fresh work folder and says what a demanding user expects regpack to say
about it: the finding codes ``regpack verify`` may use, words its message must hold, and the file it must name.
Some cases are not errors at all (``codes`` empty): they pin down what regpack must keep accepting.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.ocibuild import write_dir_folder

ROOT = Path(__file__).resolve().parents[2]

DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
DIR_VERSION = b"Directory Transport Version: 1.1\n"
V2 = Path("docker", "registry", "v2")
NOBODY = 65534


# ---------------------------------------------------------------------------------------------------------
# The good bundle


def random_bytes(seed: str, size: int) -> bytes:
    """Deterministic incompressible bytes: the same seed always gives the same blob (and digest)."""
    return random.Random(seed).randbytes(size)


def hex_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def json_bytes(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


# Layer name -> size. app.a1 and app.a2 have the same size so that swapping them keeps every size right.
LAYER_SIZES = {
    "base": 6000,
    "lib.b1": 3000,
    "app.a1": 4096,
    "app.a2": 4096,
    "tools.t1": 2500,
    "multi.amd64": 3500,
    "multi.arm64": 3600,
}
LAYERS: dict[str, bytes] = {name: random_bytes(name, size) for name, size in LAYER_SIZES.items()}


@dataclass(frozen=True)
class Single:
    """One platform image: its config, its layers (by name) and its manifest bytes."""

    config: bytes
    layers: tuple[str, ...]
    manifest: bytes

    @property
    def digest(self) -> str:
        return hex_of(self.manifest)

    @property
    def config_hex(self) -> str:
        return hex_of(self.config)

    def blobs(self) -> dict[str, bytes]:
        out = {hex_of(self.config): self.config}
        out.update({hex_of(LAYERS[n]): LAYERS[n] for n in self.layers})
        return out


def single(arch: str, layers: Sequence[str]) -> Single:
    config = json_bytes(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hex_of(LAYERS[n]) for n in layers]},
        }
    )
    manifest = json_bytes(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_V2,
            "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": "sha256:" + hex_of(config)},
            "layers": [
                {"mediaType": DOCKER_LAYER, "size": len(LAYERS[n]), "digest": "sha256:" + hex_of(LAYERS[n])}
                for n in layers
            ],
        }
    )
    return Single(config, tuple(layers), manifest)


@dataclass(frozen=True)
class MultiArch:
    """A Docker manifest list and its platform images."""

    children: dict[str, Single]  # platform architecture -> image
    manifest: bytes

    @property
    def digest(self) -> str:
        return hex_of(self.manifest)


def multi_arch(children: dict[str, Single]) -> MultiArch:
    manifest = json_bytes(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST,
            "manifests": [
                {
                    "mediaType": DOCKER_V2,
                    "size": len(child.manifest),
                    "digest": "sha256:" + child.digest,
                    "platform": {"architecture": arch, "os": "linux"},
                }
                for arch, child in children.items()
            ],
        }
    )
    return MultiArch(dict(children), manifest)


BASE = single("amd64", ["base", "lib.b1"])
APP = single("amd64", ["base", "app.a1", "app.a2"])
TOOLS = single("amd64", ["base", "tools.t1"])
MULTI = multi_arch(
    {"amd64": single("amd64", ["base", "multi.amd64"]), "arm64": single("arm64", ["base", "multi.arm64"])}
)

# Skopeo dir folder (relative to the bundle root) -> image. library/base is a namespaced repository.
IMAGES: dict[str, Single | MultiArch] = {"library/base:1": BASE, "app:1.0": APP, "tools:2": TOOLS, "multi:v1": MULTI}


def write_image_folder(folder: Path, image: Single | MultiArch) -> Path:
    """One skopeo ``dir:`` image folder, as ``skopeo copy [--all]`` writes it."""
    if folder.exists():
        raise FileExistsError(folder)
    platforms = list(image.children.values()) if isinstance(image, MultiArch) else [image]
    children = [child.manifest for child in platforms] if isinstance(image, MultiArch) else []
    return write_dir_folder(folder, image.manifest, children, [d for p in platforms for d in p.blobs().values()])


def write_skopeo(root: Path) -> Path:
    root.mkdir(parents=True)
    for rel, image in IMAGES.items():
        write_image_folder(root / rel, image)
    return root


def write_registry(root: Path) -> Path:
    """Registry v2 storage made by regpack itself from the skopeo tree (copied: no inode is shared)."""
    from regpack.jobs import pack

    src = root.parent / (root.name + ".skopeo-src")
    write_skopeo(src)
    try:
        pack(src, root, copy=True)
    finally:
        shutil.rmtree(src)
    os.chmod(root, 0o755)  # as any storage a registry serves: readable by the registry's own user
    return root


def write_sized_skopeo(root: Path, images: int, layer_size: int, prefix: str = "big/img") -> Path:
    """``images`` skopeo dir images of two layers each: one base layer they all share, one of their own.

    Every layer is ``layer_size`` random bytes, so the tree holds ``images * 2`` layers and the packed
    storage ``images + 1``: big enough for a job that takes a while, small enough to write in a second.
    """
    base = random_bytes(f"{prefix}/base/{layer_size}", layer_size)
    root.mkdir(parents=True)
    for i in range(images):
        own = random_bytes(f"{prefix}/{i}/{layer_size}", layer_size)
        config = json_bytes({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
        manifest = json_bytes(
            {
                "schemaVersion": 2,
                "mediaType": DOCKER_V2,
                "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": "sha256:" + hex_of(config)},
                "layers": [
                    {"mediaType": DOCKER_LAYER, "size": len(layer), "digest": "sha256:" + hex_of(layer)}
                    for layer in (base, own)
                ],
            }
        )
        write_dir_folder(root / f"{prefix}-{i}:1", manifest, (), (config, base, own))
    return root


def registry_repo(root: Path, repository: str) -> Path:
    return root / V2 / "repositories" / repository


def registry_blob(root: Path, hex_: str) -> Path:
    return root / V2 / "blobs" / "sha256" / hex_[:2] / hex_ / "data"


def write_oci(root: Path, refs: dict[str, str] | None = None) -> Path:
    """An OCI image layout holding app, library/base and multi; ``refs`` maps folder name -> ref.name."""
    refs = refs or {"app:1.0": "app:1.0", "library/base:1": "library/base:1", "multi:v1": "multi:v1"}
    root.mkdir(parents=True)
    (root / "oci-layout").write_bytes(b'{"imageLayoutVersion":"1.0.0"}')
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    entries = []
    for rel, ref_name in refs.items():
        image = IMAGES[rel]
        media_type = DOCKER_LIST if isinstance(image, MultiArch) else DOCKER_V2
        (blobs / hex_of(image.manifest)).write_bytes(image.manifest)
        for child in image.children.values() if isinstance(image, MultiArch) else [image]:
            if isinstance(image, MultiArch):
                (blobs / child.digest).write_bytes(child.manifest)
            for hex_, data in child.blobs().items():
                (blobs / hex_).write_bytes(data)
        entries.append(
            {
                "mediaType": media_type,
                "size": len(image.manifest),
                "digest": "sha256:" + hex_of(image.manifest),
                "annotations": {REF_NAME: ref_name},
            }
        )
    write_oci_index(root, entries)
    return root


def write_oci_index(root: Path, entries: list[dict[str, object]]) -> None:
    (root / "index.json").write_bytes(json_bytes({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}))


def layer_hex(name: str) -> str:
    return hex_of(LAYERS[name])


# ---------------------------------------------------------------------------------------------------------
# Small mutations


def swap(a: Path, b: Path) -> None:
    tmp = a.with_name(a.name + ".swap")
    os.rename(a, tmp)
    os.rename(b, a)
    os.rename(tmp, b)


def edit_json(path: Path, change: Callable[[dict[str, object]], None]) -> bytes:
    doc = json.loads(path.read_bytes())
    change(doc)
    data = json_bytes(doc)
    path.write_bytes(data)
    return data


def sparse(path: Path, size: int = 100 << 20) -> None:
    """Make ``path`` a ``size``-byte file that costs (almost) no disk: a hole of zero bytes."""
    path.unlink(missing_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)


def outside_copy(work: Path, name: str, data: bytes) -> Path:
    """A file outside the bundle (in ``work/outside``), for links that point out of it."""
    out = work / "outside"
    out.mkdir(exist_ok=True)
    path = out / name
    path.write_bytes(data)
    return path


def replace_with_symlink(path: Path, target: Path | str) -> None:
    path.unlink()
    os.symlink(target, path)


def raw_mkdir(parent: Path, name: bytes) -> Path:
    """A folder whose name is bytes that may not be UTF-8; returned as a str path (surrogateescape)."""
    path = os.fsencode(parent) + b"/" + name
    os.mkdir(path)
    return Path(os.fsdecode(path))


# ---------------------------------------------------------------------------------------------------------
# The corpus


@dataclass(frozen=True)
class Case:
    """One received bundle and what regpack must say about it.

    ``codes``: verify finding codes that correctly describe the problem (empty: the bundle is fine).
    ``words``: lowercase words the finding's message must contain. ``file``: a fragment of the path the
    finding names (and that the command-line error names). ``deep``: only reading blob bytes (hashing,
    opening) finds it, so ``inspect`` (metadata only) may list the bundle. ``carried``: plain pack/unpack
    link or copy bytes without hashing them, so they carry this corruption over unchanged; the output's verify
    then names it, and ``--verify`` refuses. ``unprivileged``: the case needs permission checks (run as nobody
    when the tests run as root). ``stderr``: a fragment the error line must hold when it differs from ``file``.
    """

    id: str
    layout: str
    make: Callable[[Path], Path]
    codes: frozenset[str] = frozenset()
    words: tuple[str, ...] = ()
    file: str = ""
    deep: bool = False
    carried: bool = False
    unprivileged: bool = False
    stderr: str = ""
    why: str = ""

    @property
    def is_error(self) -> bool:
        return bool(self.codes)


CASES: list[Case] = []


def case(
    layout: str,
    codes: Sequence[str] = (),
    words: Sequence[str] = (),
    file: str = "",
    **kw: object,
) -> Callable[[Callable[[Path], Path]], Callable[[Path], Path]]:
    """Register the decorated builder (``make(work) -> bundle root``) as a corpus case named after it."""

    def register(make: Callable[[Path], Path]) -> Callable[[Path], Path]:
        name = make.__name__.removeprefix("case_").replace("_", "-")
        CASES.append(Case(name, layout, make, frozenset(codes), tuple(words), file, **kw))  # type: ignore[arg-type]
        return make

    return register


APP_DIR = "app:1.0"
APP_MANIFEST = "app:1.0/manifest.json"


def _skopeo(work: Path) -> Path:
    return write_skopeo(work / "bundle")


# --- skopeo dir: manifests ---------------------------------------------------------------------------------


@case("skopeo-dir", ["bad-manifest"], ["json"], APP_MANIFEST)
def case_skopeo_manifest_not_json(work: Path) -> Path:
    root = _skopeo(work)
    (root / APP_MANIFEST).write_bytes(b"<html>this is not a manifest</html>\n")
    return root


@case("skopeo-dir", ["bad-manifest"], ["json"], APP_MANIFEST)
def case_skopeo_manifest_truncated(work: Path) -> Path:
    root = _skopeo(work)
    (root / APP_MANIFEST).write_bytes(APP.manifest[: len(APP.manifest) // 2])
    return root


@case("skopeo-dir", ["bad-manifest"], ["empty"], APP_MANIFEST)
def case_skopeo_manifest_zero_length(work: Path) -> Path:
    root = _skopeo(work)
    (root / APP_MANIFEST).write_bytes(b"")
    return root


@case("skopeo-dir", ["bad-manifest"], ["object"], APP_MANIFEST)
def case_skopeo_manifest_json_array(work: Path) -> Path:
    root = _skopeo(work)
    (root / APP_MANIFEST).write_bytes(b'[{"schemaVersion":2}]')
    return root


@case("skopeo-dir", ["bad-manifest", "bad-version"], ["schemaversion"], APP_MANIFEST)
def case_skopeo_schema_version_3(work: Path) -> Path:
    root = _skopeo(work)
    edit_json(root / APP_MANIFEST, lambda d: d.update(schemaVersion=3))
    return root


@case("skopeo-dir", ["bad-manifest"], ["mediatype", "application/x-unknown"], APP_MANIFEST)
def case_skopeo_unknown_media_type(work: Path) -> Path:
    root = _skopeo(work)
    edit_json(root / APP_MANIFEST, lambda d: d.update(mediaType="application/x-unknown"))
    return root


@case("skopeo-dir", ["bad-manifest"], ["digest"], APP_MANIFEST)
def case_skopeo_layer_digest_malformed(work: Path) -> Path:
    root = _skopeo(work)

    def change(d: dict[str, object]) -> None:
        layers = d["layers"]
        assert isinstance(layers, list)
        layers[1]["digest"] = "sha256:" + layer_hex("app.a1").upper()

    edit_json(root / APP_MANIFEST, change)
    return root


@case("skopeo-dir", ["bad-manifest"], ["larger"], APP_MANIFEST)
def case_skopeo_manifest_100mb(work: Path) -> Path:
    # A hostile "manifest" of 100 MB (a sparse file: no disk used) must be refused without reading it all.
    root = _skopeo(work)
    sparse(root / APP_MANIFEST)
    return root


@case("skopeo-dir", ["bad-version"], ["version"], "app:1.0/version")
def case_skopeo_unknown_dir_version(work: Path) -> Path:
    root = _skopeo(work)
    (root / APP_DIR / "version").write_bytes(b"Directory Transport Version: 9.9\n")
    return root


@case("skopeo-dir", why="skopeo itself reads a folder without a version file as the current format (1.1)")
def case_skopeo_version_file_absent(work: Path) -> Path:
    root = _skopeo(work)
    (root / APP_DIR / "version").unlink()
    return root


# --- skopeo dir: blobs -----------------------------------------------------------------------------------------


@case("skopeo-dir", ["missing-blob"], ["missing"], f"{APP_DIR}/{layer_hex('app.a2')}")
def case_skopeo_layer_missing(work: Path) -> Path:
    root = _skopeo(work)
    (root / APP_DIR / layer_hex("app.a2")).unlink()
    return root


@case("skopeo-dir", ["missing-blob"], ["config", "missing"], f"{APP_DIR}/{APP.config_hex}")
def case_skopeo_config_missing(work: Path) -> Path:
    root = _skopeo(work)
    (root / APP_DIR / APP.config_hex).unlink()
    return root


@case("skopeo-dir", ["size"], ["0 bytes", "4096"], f"{APP_DIR}/{layer_hex('app.a1')}")
def case_skopeo_layer_zero_length(work: Path) -> Path:
    root = _skopeo(work)
    (root / APP_DIR / layer_hex("app.a1")).write_bytes(b"")
    return root


@case("skopeo-dir", ["size"], ["1000 bytes", "4096"], f"{APP_DIR}/{layer_hex('app.a1')}")
def case_skopeo_layer_truncated(work: Path) -> Path:
    root = _skopeo(work)
    (root / APP_DIR / layer_hex("app.a1")).write_bytes(LAYERS["app.a1"][:1000])
    return root


@case("skopeo-dir", ["size"], ["3501"], f"multi:v1/{layer_hex('multi.amd64')}")
def case_skopeo_layer_size_declared_wrong(work: Path) -> Path:
    # The platform manifest says 3501 bytes, the file has 3500: the list and child digests are redone so that
    # only the size disagrees.
    root = _skopeo(work)
    folder = root / "multi:v1"
    shutil.rmtree(folder)
    amd = MULTI.children["amd64"]
    doc = json.loads(amd.manifest)
    doc["layers"][1]["size"] += 1
    bad = Single(amd.config, amd.layers, json_bytes(doc))
    write_image_folder(folder, multi_arch({"amd64": bad, "arm64": MULTI.children["arm64"]}))
    return root


@case(
    "skopeo-dir",
    ["digest-mismatch"],
    ["hashes to", layer_hex("app.a1")],
    f"{APP_DIR}/{layer_hex('app.a1')}",
    deep=True,
    carried=True,
)
def case_skopeo_blobs_swapped(work: Path) -> Path:
    # Two layer files of the same size exchanged: every size is right, only the content is wrong.
    root = _skopeo(work)
    swap(root / APP_DIR / layer_hex("app.a1"), root / APP_DIR / layer_hex("app.a2"))
    return root


@case(
    "skopeo-dir",
    ["digest-mismatch"],
    ["hashes to", layer_hex("base")],
    f"tools:2/{layer_hex('base')}",
    deep=True,
    carried=True,
)
def case_skopeo_shared_layer_bit_flip(work: Path) -> Path:
    # One copy of the shared base layer has a flipped bit: only the image owning that copy is at fault.
    root = _skopeo(work)
    path = root / "tools:2" / layer_hex("base")
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))
    return root


@case("skopeo-dir", ["unsafe", "missing-blob"], ["not a regular file"], f"{APP_DIR}/{layer_hex('app.a1')}")
def case_skopeo_blob_is_a_folder(work: Path) -> Path:
    root = _skopeo(work)
    path = root / APP_DIR / layer_hex("app.a1")
    path.unlink()
    path.mkdir()
    return root


# --- skopeo dir: multi-arch lists --------------------------------------------------------------------------------

MULTI_AMD = MULTI.children["amd64"].digest


@case("skopeo-dir", ["missing-child"], ["missing", MULTI_AMD], f"multi:v1/{MULTI_AMD}.manifest.json")
def case_skopeo_list_child_missing(work: Path) -> Path:
    root = _skopeo(work)
    (root / "multi:v1" / f"{MULTI_AMD}.manifest.json").unlink()
    return root


@case("skopeo-dir", ["digest-mismatch"], ["hash", MULTI_AMD], f"multi:v1/{MULTI_AMD}.manifest.json")
def case_skopeo_list_child_altered(work: Path) -> Path:
    root = _skopeo(work)
    edit_json(root / "multi:v1" / f"{MULTI_AMD}.manifest.json", lambda d: d.update(annotations={"x": "y"}))
    return root


@case("skopeo-dir", ["bad-manifest"], ["larger"], f"multi:v1/{MULTI_AMD}.manifest.json")
def case_skopeo_list_child_100mb(work: Path) -> Path:
    root = _skopeo(work)
    sparse(root / "multi:v1" / f"{MULTI_AMD}.manifest.json")
    return root


def _index_listing(digest_hex: str, size: int) -> bytes:
    return json_bytes(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_INDEX, "size": size, "digest": "sha256:" + digest_hex}],
        }
    )


FAKE_HEX = "f" * 64


@case("skopeo-dir", ["loop", "digest-mismatch"], [], f"loop:1/{FAKE_HEX}.manifest.json")
def case_skopeo_index_lists_itself(work: Path) -> Path:
    # An index cannot name its own digest (it would be a hash fixed point), so a self-loop always shows as a
    # child file holding the index's own bytes under another name. It must end (no endless walk) and be named.
    root = _skopeo(work)
    folder = root / "loop:1"
    folder.mkdir()
    (folder / "version").write_bytes(DIR_VERSION)
    index = _index_listing(FAKE_HEX, 0)
    (folder / "manifest.json").write_bytes(index)
    (folder / f"{FAKE_HEX}.manifest.json").write_bytes(index)
    return root


@case("skopeo-dir", ["loop", "digest-mismatch"], [], "loop:1/" + "e" * 64 + ".manifest.json")
def case_skopeo_index_loop_a_b_a(work: Path) -> Path:
    # A lists B (honestly), B lists "A" again under the only name it can give (a digest it cannot know).
    root = _skopeo(work)
    folder = root / "loop:1"
    folder.mkdir()
    (folder / "version").write_bytes(DIR_VERSION)
    b = _index_listing("e" * 64, 0)
    a = _index_listing(hex_of(b), len(b))
    (folder / "manifest.json").write_bytes(a)
    (folder / f"{hex_of(b)}.manifest.json").write_bytes(b)
    (folder / ("e" * 64 + ".manifest.json")).write_bytes(a)
    return root


@case(
    "skopeo-dir",
    why="a list naming the same platform manifest twice (e.g. for linux/arm/v6 and v7) is a diamond, not a "
    "loop: the registry and skopeo accept it, and it stores each manifest once",
)
def case_skopeo_list_same_child_twice(work: Path) -> Path:
    root = _skopeo(work)
    folder = root / "multi:v1"
    doc = json.loads(MULTI.manifest)
    twin = dict(doc["manifests"][1])
    twin["platform"] = {"architecture": "arm64", "os": "linux", "variant": "v8"}
    doc["manifests"].append(twin)
    (folder / "manifest.json").write_bytes(json_bytes(doc))
    return root


# --- skopeo dir: names -----------------------------------------------------------------------------------------


@case("skopeo-dir", ["bad-name"], ["repository"], "UPPER:1")
def case_skopeo_folder_uppercase(work: Path) -> Path:
    root = _skopeo(work)
    os.rename(root / APP_DIR, root / "UPPER:1")
    return root


@case("skopeo-dir", ["bad-name"], ["tag"], "app:bad tag")
def case_skopeo_tag_with_space(work: Path) -> Path:
    root = _skopeo(work)
    os.rename(root / APP_DIR, root / "app:bad tag")
    return root


@case("skopeo-dir", ["bad-name"], ["tag"], "app:v1!")
def case_skopeo_tag_with_bang(work: Path) -> Path:
    root = _skopeo(work)
    os.rename(root / APP_DIR, root / "app:v1!")
    return root


@case("skopeo-dir", ["bad-name"], ["repository"], "app\\xff:1")
def case_skopeo_folder_not_utf8(work: Path) -> Path:
    root = _skopeo(work)
    folder = raw_mkdir(root, b"app\xff:1")
    os.rmdir(folder)
    os.rename(root / APP_DIR, folder)
    return root


@case("skopeo-dir", ["digest-mismatch"], [APP.digest], "app@sha256:" + "a" * 64)
def case_skopeo_digest_folder_wrong(work: Path) -> Path:
    root = _skopeo(work)
    os.rename(root / APP_DIR, root / ("app@sha256:" + "a" * 64))
    return root


@case("skopeo-dir", ["empty"], ["no image"], "bundle")
def case_skopeo_empty_folder(work: Path) -> Path:
    root = work / "bundle"
    root.mkdir()
    return root


# --- skopeo dir: links, special files, permissions ---------------------------------------------------------------


@case("skopeo-dir", ["unsafe"], ["outside the bundle"], f"{APP_DIR}/{layer_hex('app.a1')}")
def case_skopeo_blob_symlink_out(work: Path) -> Path:
    # The link target even holds the right bytes: following it would still read outside what was received.
    root = _skopeo(work)
    target = outside_copy(work, "a1", LAYERS["app.a1"])
    replace_with_symlink(root / APP_DIR / layer_hex("app.a1"), target)
    return root


@case("skopeo-dir", ["unsafe"], ["outside the bundle"], f"{APP_DIR}/{layer_hex('app.a1')}")
def case_skopeo_blob_symlink_etc_passwd(work: Path) -> Path:
    root = _skopeo(work)
    replace_with_symlink(root / APP_DIR / layer_hex("app.a1"), "/etc/passwd")
    return root


@case("skopeo-dir", ["unsafe"], ["outside the bundle"], APP_MANIFEST)
def case_skopeo_manifest_symlink_out(work: Path) -> Path:
    root = _skopeo(work)
    target = outside_copy(work, "manifest.json", APP.manifest)
    replace_with_symlink(root / APP_MANIFEST, target)
    return root


@case("skopeo-dir", ["unsafe"], ["outside the bundle"], "app:1.0/signature-1")
def case_skopeo_signature_symlink_out(work: Path) -> Path:
    root = _skopeo(work)
    target = outside_copy(work, "secret", b"not a signature\n")
    os.symlink(target, root / APP_DIR / "signature-1")
    return root


@case("skopeo-dir", ["missing-blob", "unsafe"], ["dangling"], f"{APP_DIR}/{layer_hex('app.a1')}")
def case_skopeo_blob_dangling_symlink(work: Path) -> Path:
    root = _skopeo(work)
    replace_with_symlink(root / APP_DIR / layer_hex("app.a1"), "no-such-file")
    return root


@case(
    "skopeo-dir",
    why="a symbolic link that stays inside the bundle (skopeo dirs sharing a layer file) is just another name "
    "for a file that was received",
)
def case_skopeo_blob_symlink_inside(work: Path) -> Path:
    root = _skopeo(work)
    replace_with_symlink(root / APP_DIR / layer_hex("base"), Path("..", "tools:2", layer_hex("base")))
    return root


@case(
    "skopeo-dir",
    why="a hard link is not a pointer: the file is in the bundle like any other, whoever else links it "
    "(a bundle copied with cp -al is all hard links)",
)
def case_skopeo_blob_hard_link_outside(work: Path) -> Path:
    root = _skopeo(work)
    target = outside_copy(work, "a1", LAYERS["app.a1"])
    path = root / APP_DIR / layer_hex("app.a1")
    path.unlink()
    os.link(target, path)
    return root


FOREIGN_HEX = hex_of(b"a foreign layer nobody shipped")


@case(
    "skopeo-dir",
    why="a foreign (non-distributable) layer is fetched from its URLs; skopeo and registries legitimately leave it out",
)
def case_skopeo_foreign_layer_absent(work: Path) -> Path:
    root = _skopeo(work)
    config = json_bytes({"architecture": "amd64", "os": "windows", "rootfs": {"type": "layers", "diff_ids": []}})
    manifest = json_bytes(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_V2,
            "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": "sha256:" + hex_of(config)},
            "layers": [
                {
                    "mediaType": DOCKER_FOREIGN,
                    "size": 30,
                    "digest": "sha256:" + FOREIGN_HEX,
                    "urls": ["https://example.com/foreign.tar.gz"],
                },
                {"mediaType": DOCKER_LAYER, "size": len(LAYERS["base"]), "digest": "sha256:" + layer_hex("base")},
            ],
        }
    )
    write_dir_folder(root / "windows:1", manifest, (), (config, LAYERS["base"]))
    return root


def _unreadable(path: Path) -> None:
    os.chmod(path, 0)


@case(
    "skopeo-dir",
    ["unreadable"],
    ["permission"],
    f"{APP_DIR}/{layer_hex('app.a1')}",
    deep=True,
    unprivileged=True,
)
def case_skopeo_layer_unreadable(work: Path) -> Path:
    # inspect only needs sizes (lstat), so it may list the image; pack needs the bytes and must refuse.
    root = _skopeo(work)
    _unreadable(root / APP_DIR / layer_hex("app.a1"))
    return root


@case("skopeo-dir", ["unreadable"], ["permission"], APP_MANIFEST, unprivileged=True)
def case_skopeo_manifest_unreadable(work: Path) -> Path:
    root = _skopeo(work)
    _unreadable(root / APP_MANIFEST)
    return root


@case("skopeo-dir", ["unreadable"], ["permission"], APP_DIR, unprivileged=True)
def case_skopeo_image_folder_unreadable(work: Path) -> Path:
    # Silently skipping the folder would pack three images out of four: data lost without a word.
    root = _skopeo(work)
    _unreadable(root / APP_DIR)
    return root


@case("skopeo-dir", ["unreadable", "bad-version"], ["permission"], "app:1.0/version", unprivileged=True)
def case_skopeo_version_file_unreadable(work: Path) -> Path:
    root = _skopeo(work)
    _unreadable(root / APP_DIR / "version")
    return root


@case("skopeo-dir", ["bad-manifest"], ["signature"], "old:1/manifest.json")
def case_skopeo_schema1_signature_infinite_length(work: Path) -> Path:
    # A signed schema1 manifest whose JWS header claims a formatLength of 1e999 (JSON for infinity).
    root = _skopeo(work)
    header = base64.urlsafe_b64encode(b'{"formatLength":1e999,"formatTail":"fQ"}').decode().rstrip("=")
    manifest = json_bytes(
        {"schemaVersion": 1, "name": "old", "tag": "1", "fsLayers": [], "signatures": [{"protected": header}]}
    )
    write_dir_folder(root / "old:1", manifest)
    return root


# --- registry storage --------------------------------------------------------------------------------------------


def _registry(work: Path) -> Path:
    return write_registry(work / "bundle")


APP_TAG_LINK = "repositories/app/_manifests/tags/1.0/current/link"
A1_LINK = f"repositories/app/_layers/sha256/{layer_hex('app.a1')}/link"
APP_REVISION_LINK = f"repositories/app/_manifests/revisions/sha256/{APP.digest}/link"


@case("registry", ["bad-link"], ["newline"], APP_TAG_LINK)
def case_registry_tag_link_newline(work: Path) -> Path:
    root = _registry(work)
    (root / V2 / APP_TAG_LINK).write_bytes(b"sha256:" + APP.digest.encode() + b"\n")
    return root


@case("registry", ["bad-link"], ["newline"], A1_LINK)
def case_registry_layer_link_newline(work: Path) -> Path:
    root = _registry(work)
    (root / V2 / A1_LINK).write_bytes(b"sha256:" + layer_hex("app.a1").encode() + b"\n")
    return root


@case("registry", ["bad-link"], ["sha256"], APP_REVISION_LINK)
def case_registry_link_uppercase_hex(work: Path) -> Path:
    root = _registry(work)
    (root / V2 / APP_REVISION_LINK).write_bytes(b"sha256:" + APP.digest.upper().encode())
    return root


@case("registry", ["bad-link"], ["sha512"], APP_TAG_LINK)
def case_registry_link_sha512(work: Path) -> Path:
    root = _registry(work)
    (root / V2 / APP_TAG_LINK).write_bytes(b"sha512:" + hashlib.sha512(APP.manifest).hexdigest().encode())
    return root


@case("registry", ["bad-link"], ["digest"], A1_LINK)
def case_registry_link_garbage(work: Path) -> Path:
    root = _registry(work)
    (root / V2 / A1_LINK).write_bytes(b"\x00\xffgarbage\x1b[31m")
    return root


@case("registry", ["bad-link"], ["digest"], APP_TAG_LINK)
def case_registry_link_empty(work: Path) -> Path:
    root = _registry(work)
    (root / V2 / APP_TAG_LINK).write_bytes(b"")
    return root


@case("registry", ["missing-revision"], ["revision", TOOLS.digest], "repositories/app/_manifests/tags/1.0/current")
def case_registry_current_names_missing_revision(work: Path) -> Path:
    # The tag points at a manifest that exists in storage but was never pushed to this repository.
    root = _registry(work)
    (root / V2 / APP_TAG_LINK).write_bytes(b"sha256:" + TOOLS.digest.encode())
    return root


@case("registry", ["missing-manifest", "missing-blob"], ["missing"], f"{APP.digest[:2]}/{APP.digest}/data")
def case_registry_manifest_data_missing(work: Path) -> Path:
    root = _registry(work)
    registry_blob(root, APP.digest).unlink()
    return root


@case("registry", ["missing-blob"], ["missing"], f"{layer_hex('app.a1')}/data")
def case_registry_layer_data_missing(work: Path) -> Path:
    root = _registry(work)
    registry_blob(root, layer_hex("app.a1")).unlink()
    return root


@case("registry", ["missing-link"], ["_layers", "404"], A1_LINK.removesuffix("/link"))
def case_registry_layer_link_missing(work: Path) -> Path:
    # The blob is stored, but this repository does not link it: the registry answers 404 to clients.
    root = _registry(work)
    shutil.rmtree((root / V2 / A1_LINK).parent)
    return root


@case(
    "registry", ["missing-link"], ["revision", MULTI_AMD], f"repositories/multi/_manifests/revisions/sha256/{MULTI_AMD}"
)
def case_registry_child_revision_link_missing(work: Path) -> Path:
    root = _registry(work)
    shutil.rmtree(registry_repo(root, "multi") / "_manifests" / "revisions" / "sha256" / MULTI_AMD)
    return root


@case("registry", ["size"], ["4096"], f"{layer_hex('app.a1')}/data")
def case_registry_layer_data_truncated(work: Path) -> Path:
    root = _registry(work)
    registry_blob(root, layer_hex("app.a1")).write_bytes(LAYERS["app.a1"][:4000])
    return root


@case("registry", ["digest-mismatch"], ["hash", APP.digest], f"{APP.digest}/data")
def case_registry_manifest_data_altered(work: Path) -> Path:
    root = _registry(work)
    path = registry_blob(root, APP.digest)
    path.write_bytes(path.read_bytes() + b"\n")
    return root


@case(
    "registry",
    ["digest-mismatch"],
    ["hashes to", layer_hex("app.a1")],
    f"{layer_hex('app.a1')}/data",
    deep=True,
    carried=True,
)
def case_registry_blobs_swapped(work: Path) -> Path:
    root = _registry(work)
    swap(registry_blob(root, layer_hex("app.a1")), registry_blob(root, layer_hex("app.a2")))
    return root


@case("registry", ["bad-manifest"], ["larger"], f"{APP.digest}/data")
def case_registry_manifest_data_100mb(work: Path) -> Path:
    root = _registry(work)
    sparse(registry_blob(root, APP.digest))
    return root


@case("registry", ["bad-name"], ["repository"], "repositories/UPPER")
def case_registry_repository_uppercase(work: Path) -> Path:
    root = _registry(work)
    os.rename(registry_repo(root, "app"), registry_repo(root, "UPPER"))
    return root


@case("registry", ["bad-name"], ["repository"], "repositories/...")
def case_registry_repository_dots(work: Path) -> Path:
    # The filesystem has no folder named "..": "..." is as close as a repository folder gets to escaping.
    root = _registry(work)
    os.rename(registry_repo(root, "app"), registry_repo(root, "..."))
    return root


@case("registry", ["bad-name"], ["repository"], "repositories/library/..a")
def case_registry_nested_repository_dot_component(work: Path) -> Path:
    root = _registry(work)
    os.rename(registry_repo(root, "library/base"), registry_repo(root, "library/..a"))
    return root


@case("registry", ["bad-name"], ["repository"], "repositories/app\\xff")
def case_registry_repository_not_utf8(work: Path) -> Path:
    root = _registry(work)
    folder = raw_mkdir(root / V2 / "repositories", b"app\xff")
    os.rmdir(folder)
    os.rename(registry_repo(root, "app"), folder)
    return root


@case("registry", ["bad-name"], ["tag"], "_manifests/tags/bad tag")
def case_registry_tag_with_space(work: Path) -> Path:
    root = _registry(work)
    tags = registry_repo(root, "app") / "_manifests" / "tags"
    os.rename(tags / "1.0", tags / "bad tag")
    return root


@case("registry", ["bad-name"], ["tag"], "_manifests/tags/v1!")
def case_registry_tag_with_bang(work: Path) -> Path:
    root = _registry(work)
    tags = registry_repo(root, "app") / "_manifests" / "tags"
    os.rename(tags / "1.0", tags / "v1!")
    return root


@case("registry", ["unsafe"], ["outside the bundle"], f"{layer_hex('app.a1')}/data")
def case_registry_data_symlink_out(work: Path) -> Path:
    root = _registry(work)
    target = outside_copy(work, "a1", LAYERS["app.a1"])
    replace_with_symlink(registry_blob(root, layer_hex("app.a1")), target)
    return root


@case("registry", ["unsafe"], ["outside the bundle"], "blobs/sha256/" + layer_hex("app.a1")[:2])
def case_registry_blob_folder_symlink_out(work: Path) -> Path:
    # Not the data file but a folder on its way is the link: the file then looks regular from inside.
    root = _registry(work)
    prefix = registry_blob(root, layer_hex("app.a1")).parent.parent
    moved = work / "outside" / prefix.name
    moved.parent.mkdir(exist_ok=True)
    shutil.move(prefix, moved)
    os.symlink(moved, prefix)
    return root


@case("registry", ["unsafe"], ["outside the bundle"], layer_hex("app.a1"))
def case_registry_blob_digest_folder_symlink_out(work: Path) -> Path:
    # The folder named for the digest (not its parent) links out: the listing of the parent must not vouch
    # for it.
    root = _registry(work)
    folder = registry_blob(root, layer_hex("app.a1")).parent
    moved = work / "outside" / folder.name
    moved.parent.mkdir(exist_ok=True)
    shutil.move(folder, moved)
    os.symlink(moved, folder)
    return root


@case("registry", ["unsafe"], ["outside the bundle"], APP_TAG_LINK)
def case_registry_link_symlink_out(work: Path) -> Path:
    root = _registry(work)
    target = outside_copy(work, "link", b"sha256:" + APP.digest.encode())
    replace_with_symlink(root / V2 / APP_TAG_LINK, target)
    return root


@case("registry", ["unsafe"], ["symbolic link"], "repositories/app")
def case_registry_repository_symlink_out(work: Path) -> Path:
    # The whole repository folder is a link to one outside: skipping it silently would lose the image.
    root = _registry(work)
    repo = registry_repo(root, "app")
    moved = work / "outside" / "app-repository"
    moved.parent.mkdir(exist_ok=True)
    shutil.move(repo, moved)
    os.symlink(moved, repo)
    return root


@case("registry", ["unreadable", "bad-link"], ["permission"], APP_TAG_LINK, unprivileged=True)
def case_registry_link_unreadable(work: Path) -> Path:
    root = _registry(work)
    _unreadable(root / V2 / APP_TAG_LINK)
    return root


@case("registry", ["unreadable"], ["permission"], f"{APP.digest}/data", unprivileged=True)
def case_registry_manifest_data_unreadable(work: Path) -> Path:
    root = _registry(work)
    _unreadable(registry_blob(root, APP.digest))
    return root


@case("registry", ["empty"], ["no"], "docker/registry/v2")
def case_registry_no_repositories(work: Path) -> Path:
    root = work / "bundle"
    (root / V2 / "repositories").mkdir(parents=True)
    (root / V2 / "blobs").mkdir(parents=True)
    return root


@case("registry", why="_uploads holds a live registry's unfinished uploads: not part of any image")
def case_registry_uploads_ignored(work: Path) -> Path:
    root = _registry(work)
    uploads = registry_repo(root, "app") / "_uploads" / "0f6c1c4e-upload"
    uploads.mkdir(parents=True)
    (uploads / "data").write_bytes(b"half an upload")
    (uploads / "startedat").write_bytes(b"2024-01-01T00:00:00Z")
    return root


# --- OCI layout --------------------------------------------------------------------------------------------------


def _oci(work: Path, refs: dict[str, str] | None = None) -> Path:
    return write_oci(work / "bundle", refs)


@case("oci", ["bad-manifest"], ["json"], "index.json")
def case_oci_index_not_json(work: Path) -> Path:
    root = _oci(work)
    (root / "index.json").write_bytes(b'{"schemaVersion": 2, "manifests": [')
    return root


@case("oci", ["bad-manifest"], ["larger"], "index.json")
def case_oci_index_100mb(work: Path) -> Path:
    root = _oci(work)
    sparse(root / "index.json")
    return root


@case("oci", ["bad-name"], ["'..'"], "index.json", stderr="../../sentinel:1")
def case_oci_ref_name_dotdot(work: Path) -> Path:
    return _oci(work, {"app:1.0": "../../sentinel:1", "library/base:1": "library/base:1"})


@case("oci", ["bad-name"], ["/tmp/sentinel:1"], "index.json", stderr="/tmp/sentinel:1")
def case_oci_ref_name_absolute(work: Path) -> Path:
    return _oci(work, {"app:1.0": "/tmp/sentinel:1", "library/base:1": "library/base:1"})


@case("oci", ["bad-name"], ["tag"], "index.json", stderr="v1!")
def case_oci_ref_name_bad_tag(work: Path) -> Path:
    return _oci(work, {"app:1.0": "app:v1!", "library/base:1": "library/base:1"})


@case("oci", ["bad-name"], ["repository"], "index.json", stderr="App")
def case_oci_ref_name_uppercase(work: Path) -> Path:
    return _oci(work, {"app:1.0": "App/x:1", "library/base:1": "library/base:1"})


@case("oci", ["missing-blob"], ["missing"], f"blobs/sha256/{layer_hex('app.a2')}")
def case_oci_layer_missing(work: Path) -> Path:
    root = _oci(work)
    (root / "blobs" / "sha256" / layer_hex("app.a2")).unlink()
    return root


@case("oci", ["digest-mismatch"], ["hash", APP.digest], f"blobs/sha256/{APP.digest}")
def case_oci_manifest_blob_altered(work: Path) -> Path:
    root = _oci(work)
    path = root / "blobs" / "sha256" / APP.digest
    path.write_bytes(path.read_bytes() + b" ")
    return root


@case("oci", ["size"], [str(len(APP.manifest) + 7)], f"blobs/sha256/{APP.digest}")
def case_oci_index_declares_wrong_size(work: Path) -> Path:
    # index.json says the app manifest is 7 bytes longer than it is: clients that trust the descriptor fail.
    root = _oci(work)

    def change(d: dict[str, object]) -> None:
        manifests = d["manifests"]
        assert isinstance(manifests, list)
        manifests[0]["size"] += 7

    edit_json(root / "index.json", change)
    return root


@case("oci", ["unsafe"], ["outside the bundle"], "blobs/sha256")
def case_oci_blob_folder_symlink_out(work: Path) -> Path:
    root = _oci(work)
    moved = work / "outside" / "sha256"
    moved.parent.mkdir(exist_ok=True)
    shutil.move(root / "blobs" / "sha256", moved)
    os.symlink(moved, root / "blobs" / "sha256")
    return root


@case("oci", ["unsafe"], ["outside the bundle"], f"blobs/sha256/{layer_hex('app.a1')}")
def case_oci_blob_symlink_etc_passwd(work: Path) -> Path:
    root = _oci(work)
    replace_with_symlink(root / "blobs" / "sha256" / layer_hex("app.a1"), "/etc/passwd")
    return root


@case("oci", ["unreadable"], ["permission"], "index.json", unprivileged=True)
def case_oci_index_unreadable(work: Path) -> Path:
    root = _oci(work)
    _unreadable(root / "index.json")
    return root


@case("oci", ["unreadable"], ["permission"], f"blobs/sha256/{layer_hex('app.a1')}", deep=True, unprivileged=True)
def case_oci_layer_unreadable(work: Path) -> Path:
    root = _oci(work)
    _unreadable(root / "blobs" / "sha256" / layer_hex("app.a1"))
    return root


@case("oci", ["empty"], ["no image"], "index.json")
def case_oci_index_lists_nothing(work: Path) -> Path:
    root = _oci(work)
    write_oci_index(root, [])
    return root


# --- archives (.tar, .tar.zst) ---------------------------------------------------------------------------------

ARCHIVE = "bundle.tar"
TarEntry = tuple[tarfile.TarInfo, bytes | None]


def _storage_entries(work: Path, prefix: str = "") -> list[TarEntry]:
    """Members of a tar of good registry storage, as a user's tar makes them (folders, then sorted files)."""
    storage = write_registry(work / "storage")
    entries: list[TarEntry] = []
    for path in sorted(storage.rglob("*")):
        info = tarfile.TarInfo(prefix + path.relative_to(storage).as_posix())
        if path.is_dir():
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            entries.append((info, None))
        else:
            data = path.read_bytes()
            info.size, info.mode = len(data), 0o644
            entries.append((info, data))
    shutil.rmtree(storage)
    return entries


def _tar_bytes(entries: Sequence[TarEntry], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape") as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def _archive(work: Path, extra: Sequence[TarEntry] = (), first: Sequence[TarEntry] = ()) -> Path:
    path = work / ARCHIVE
    path.write_bytes(_tar_bytes([*first, *_storage_entries(work), *extra]))
    return path


def _special(name: str, type_: bytes, linkname: str = "") -> TarEntry:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = type_, linkname
    return (info, None)


def _regular(name: str, data: bytes) -> TarEntry:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return (info, data)


def _layer_header_offset(data: bytes) -> tuple[int, int]:
    """(offset of the header, size) of the first member holding the corpus's base layer."""
    hex_ = layer_hex("base")
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for member in tf.getmembers():
            if member.name.endswith(f"{hex_}/data"):
                return member.offset + (member.offset_data - member.offset - 512), member.size
    raise AssertionError("no base layer in the archive")


def _set_size(data: bytearray, header: int, size: int) -> None:
    data[header + 124 : header + 136] = b"%011o\0" % size
    data[header + 148 : header + 156] = b" " * 8
    data[header + 148 : header + 156] = b"%06o\0 " % sum(data[header : header + 512])


@case("archive", ["unsafe"], ["absolute"], ARCHIVE)
def case_archive_absolute_name(work: Path) -> Path:
    return _archive(work, [_regular("/tmp/regpack-corpus-evil", b"x")])


@case("archive", ["unsafe"], ["'..'"], ARCHIVE)
def case_archive_dotdot(work: Path) -> Path:
    return _archive(work, [_regular("docker/registry/../../../evil", b"x")])


@case("archive", ["unsafe"], ["symbolic link"], ARCHIVE)
def case_archive_symlink(work: Path) -> Path:
    return _archive(work, [_special("docker/registry/v2/evil", tarfile.SYMTYPE, "/etc/passwd")])


@case("archive", ["unsafe"], ["hard link"], ARCHIVE)
def case_archive_hardlink(work: Path) -> Path:
    return _archive(work, [_special("docker/registry/v2/evil", tarfile.LNKTYPE, "/etc/passwd")])


@case("archive", ["unsafe"], ["character device"], ARCHIVE)
def case_archive_device(work: Path) -> Path:
    return _archive(work, [_special("docker/registry/v2/null", tarfile.CHRTYPE)])


@case("archive", ["unsafe"], ["fifo"], ARCHIVE)
def case_archive_fifo(work: Path) -> Path:
    return _archive(work, [_special("docker/registry/v2/pipe", tarfile.FIFOTYPE)])


@case("archive", ["unsafe"], ["twice"], ARCHIVE)
def case_archive_duplicate_member(work: Path) -> Path:
    # a second tag link after the first: which one counts would depend on the reader
    other = f"sha256:{layer_hex('base')}".encode()
    return _archive(work, [_regular("docker/registry/v2/repositories/app/_manifests/tags/1.0/current/link", other)])


@case("archive", ["unsafe"], ["which is a file"], ARCHIVE)
def case_archive_member_inside_a_file(work: Path) -> Path:
    return _archive(work, [_regular("docker/notes", b"x"), _regular("docker/notes/more", b"y")])


@case("archive", ["corrupt"], ["corrupt", "header"], ARCHIVE)
def case_archive_member_larger_than_its_header(work: Path) -> Path:
    path = _archive(work)
    data = bytearray(path.read_bytes())
    header, size = _layer_header_offset(bytes(data))
    _set_size(data, header, size - 1024)  # the rest of its bytes come where the next header should be
    path.write_bytes(bytes(data))
    return path


@case("archive", ["corrupt", "truncated"], [], ARCHIVE)
def case_archive_member_smaller_than_its_header(work: Path) -> Path:
    path = _archive(work)
    data = bytearray(path.read_bytes())
    header, size = _layer_header_offset(bytes(data))
    _set_size(data, header, size + 4096)  # swallows the next headers
    path.write_bytes(bytes(data))
    return path


@case("archive", ["truncated"], ["truncated"], ARCHIVE)
def case_archive_truncated_in_a_member(work: Path) -> Path:
    path = _archive(work)
    data = path.read_bytes()
    header, size = _layer_header_offset(data)
    path.write_bytes(data[: header + 512 + size // 2])
    return path


@case("archive", ["truncated"], ["truncated", "end-of-archive"], ARCHIVE)
def case_archive_cut_between_members(work: Path) -> Path:
    path = _archive(work)
    data = path.read_bytes()
    header, _ = _layer_header_offset(data)
    path.write_bytes(data[:header])  # whole members only, but no end: not a complete archive
    return path


@case("archive", ["corrupt"], ["after the end-of-archive"], ARCHIVE)
def case_archive_garbage_after_the_end(work: Path) -> Path:
    path = _archive(work)
    path.write_bytes(path.read_bytes() + b"appended by someone" * 100)
    return path


@case("archive", ["corrupt"], ["not utf-8"], ARCHIVE)
def case_archive_name_not_utf8(work: Path) -> Path:
    return _archive(work, [_regular("docker/caf\udce9", b"x")])


def _zstd() -> object:
    from regpack.archive import zstd_module

    return zstd_module()


@case("archive", ["truncated"], ["zstd", "truncated"], "bundle.tar.zst")
def case_archive_zstd_truncated(work: Path) -> Path:
    data = _zstd().compress(_tar_bytes(_storage_entries(work)))  # type: ignore[attr-defined]
    path = work / "bundle.tar.zst"
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


@case("archive", ["unsafe"], ["bomb"], "bundle.tar.zst")
def case_archive_zstd_bomb(work: Path) -> Path:
    """A member claiming 4 GiB of zeros, a few kilobytes compressed, ahead of good storage."""
    zstd = _zstd()
    compressor = zstd.ZstdCompressor(level=1)  # type: ignore[attr-defined]
    info = tarfile.TarInfo("docker/zeros")
    info.size = 4 << 30
    path = work / "bundle.tar.zst"
    with open(path, "wb") as f:
        f.write(compressor.compress(info.tobuf(tarfile.GNU_FORMAT)))
        zeros = bytes(16 << 20)
        for _ in range(320 // 16):
            f.write(compressor.compress(zeros))
        f.write(compressor.flush())
    return path


@case("archive", ["truncated"], ["gzip", "truncated"], "bundle.tar.gz")
def case_archive_gzip_truncated(work: Path) -> Path:
    import gzip

    data = gzip.compress(_tar_bytes(_storage_entries(work)))
    path = work / "bundle.tar.gz"
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


@case("archive", ["corrupt"], ["gzip", "damaged"], "bundle.tar.gz")
def case_archive_gzip_damaged(work: Path) -> Path:
    """A byte of the compressed stream changed: the deflate data, or the CRC gzip keeps of it, says so."""
    import gzip

    data = bytearray(gzip.compress(_tar_bytes(_storage_entries(work))))
    data[len(data) // 2] ^= 0xFF
    path = work / "bundle.tar.gz"
    path.write_bytes(bytes(data))
    return path


@case("archive", ["empty"], ["empty"], ARCHIVE)
def case_archive_empty_file(work: Path) -> Path:
    path = work / ARCHIVE
    path.write_bytes(b"")
    return path


@case("archive", ["digest-mismatch"], [], f"{ARCHIVE}:docker/registry/v2/blobs", deep=True, carried=True)
def case_archive_layer_bit_flip(work: Path) -> Path:
    path = _archive(work)
    data = bytearray(path.read_bytes())
    header, size = _layer_header_offset(bytes(data))
    data[header + 512 + size // 2] ^= 0x01
    path.write_bytes(bytes(data))
    return path


@case("archive", why="pax headers and './' names, as 'tar --format=posix -C storage .' writes them")
def case_archive_pax_dot_slash(work: Path) -> Path:
    path = work / ARCHIVE
    entries = [_special("./", tarfile.DIRTYPE), *_storage_entries(work, "./")]
    for info, _ in entries:
        info.pax_headers = {"comment": "made by hand"}
    path.write_bytes(_tar_bytes(entries, tarfile.PAX_FORMAT))
    return path


@case("archive", why="a zstd stream of several frames, as zstd -T0 and concatenated streams give")
def case_archive_zstd_frames(work: Path) -> Path:
    data = _tar_bytes(_storage_entries(work))
    zstd = _zstd()
    cut = len(data) // 3
    path = work / "bundle.tar.zst"
    path.write_bytes(zstd.compress(data[:cut]) + zstd.compress(data[cut:]))  # type: ignore[attr-defined]
    return path


@case("archive", why="a gzip archive of two members, as tar -czf and concatenated gzip files give")
def case_archive_gzip_members(work: Path) -> Path:
    import gzip

    data = _tar_bytes(_storage_entries(work))
    cut = len(data) // 3
    path = work / "bundle.tar.gz"
    path.write_bytes(gzip.compress(data[:cut]) + gzip.compress(data[cut:]))
    return path


@case("archive", why="registry storage one folder down in the archive (tar -cf x.tar storage/)")
def case_archive_storage_in_a_subfolder(work: Path) -> Path:
    path = work / ARCHIVE
    path.write_bytes(_tar_bytes([_special("storage", tarfile.DIRTYPE), *_storage_entries(work, "storage/")]))
    return path


# ---------------------------------------------------------------------------------------------------------
# Running the command line


@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"regpack {' '.join(self.args)} -> {self.code}\nstdout: {self.stdout}\nstderr: {self.stderr}"


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env["LANG"] = env["LC_ALL"] = "C.UTF-8"  # a usual terminal: UTF-8, strict output encoding
    env.pop("PYTHONIOENCODING", None)
    return env


def start_cli(args: Sequence[str | Path]) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "regpack", *(os.fsencode(a) if isinstance(a, Path) else a for a in args)]
    return subprocess.Popen(argv, cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen[bytes], args: Sequence[str | Path], timeout: float = 120) -> Run:
    out, err = proc.communicate(timeout=timeout)
    return Run(
        tuple(os.fsdecode(a) if isinstance(a, Path) else a for a in args),
        proc.returncode,
        out.decode("utf-8", "backslashreplace"),
        err.decode("utf-8", "backslashreplace"),
    )


def run_cli(*args: str | Path) -> Run:
    """``regpack ARGS`` in a subprocess, as a user runs it."""
    return finish(start_cli(args), args)


def run_many(commands: Sequence[Sequence[str | Path]]) -> list[Run]:
    """Several independent ``regpack`` runs at once (they only read the same bundle, into other folders)."""
    procs = [start_cli(c) for c in commands]
    return [finish(p, c) for p, c in zip(procs, commands, strict=True)]


def run_cli_as_nobody(*args: str | Path) -> Run:
    """``regpack ARGS`` in a forked child that dropped root for ``nobody``, so file permissions apply.

    The child does not exec (the interpreter lives where nobody may not look): it runs ``regpack.cli.main``
    with every module imported beforehand.
    """
    import regpack.cli
    import regpack.jobs
    import regpack.verify

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 70
            try:
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
                sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
                os.setgroups([])
                os.setresgid(NOBODY, NOBODY, NOBODY)
                os.setresuid(NOBODY, NOBODY, NOBODY)
                try:
                    code = regpack.cli.main([os.fspath(a) for a in args])
                except BaseException:
                    import traceback

                    traceback.print_exc()
                    code = 71
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        return Run(
            tuple(os.fspath(a) for a in args),
            os.waitstatus_to_exitcode(status),
            out.read().decode("utf-8", "backslashreplace"),
            err.read().decode("utf-8", "backslashreplace"),
        )


def shared_work_dir() -> Path:
    """A work folder ``nobody`` can enter and write (pytest's own temp folders are private to root)."""
    work = Path(tempfile.mkdtemp(prefix="regpack-corpus-", dir="/tmp"))
    os.chmod(work, 0o755)
    return work


def give_to_nobody(path: Path) -> None:
    os.chown(path, NOBODY, NOBODY)


def make_removable(root: Path) -> None:
    """Undo chmod 000 so the folder can be deleted by anyone."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, stat.S_IRWXU)
    if os.path.isdir(root):
        os.chmod(root, stat.S_IRWXU)


def findings(report: dict[str, object]) -> list[dict[str, object]]:
    """Every finding of a ``verify --json`` report, each with its image name."""
    out: list[dict[str, object]] = []
    for image in report.get("images", []):  # type: ignore[union-attr]
        for f in image["findings"]:
            out.append({**f, "image": image["name"]})
    for f in report.get("bundle_findings", []):  # type: ignore[union-attr]
        out.append({**f, "image": None})
    return out


def partials(dest: Path) -> list[Path]:
    return sorted(dest.parent.glob(dest.name + ".partial-*"))


def listing(root: Path) -> dict[str, tuple[int, int, int]]:
    """Relative path -> (mode, size, mtime_ns) of every entry below ``root`` (links not followed)."""
    out: dict[str, tuple[int, int, int]] = {}
    if os.path.isfile(root):  # an archive
        st = os.lstat(root)
        out["."] = (st.st_mode, st.st_size, st.st_mtime_ns)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out
