"""Synthetic skopeo ``dir:`` bundles for tests and benchmarks, with the layer sharing real bundles have.

Every image stacks three kinds of layers, bottom to top:

- base layers from one of a few base stacks (one per family and platform), so most images share them;
- mid layers from a pool of "runtime" stacks, each used by roughly ten images;
- app layers that belong to one image only (and a config that is always unique).

Blobs are random bytes, not tar archives: the formats only care about digests and sizes. Configs are valid
JSON with ``os`` and ``architecture``; manifests are Docker schema2 or OCI with every size and digest right.
Everything is deterministic for a seed. Each distinct blob's bytes are generated once (streamed in chunks,
never a whole blob in memory); every other folder that uses it gets a real copy (what a bundle made by
``skopeo copy`` looks like on disk) or, with ``link=True``, a hard link (fast, when a case does not care).

Command line, from a checkout::

    python -m tests.support.synth OUT --images N --layers L --blob-size BYTES [--seed S] [--lists K] [--link]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regpack.manifest import DOCKER_LIST, DOCKER_V2, OCI_INDEX, OCI_MANIFEST
from tests.support.ocibuild import DIR_VERSION, write_dir_folder

VERSION = DIR_VERSION
CHUNK = 1 << 20

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

BASE_FAMILIES = 3
BASE_WEIGHTS = (0.6, 0.25, 0.15)  # how often each base family is picked: the first is "the company base"
IMAGES_PER_MID_STACK = 10
# Extra platforms of a multi-arch list, after linux/amd64 (the platform every single-arch image has).
LIST_PLATFORMS = (("arm64", "v8"), ("arm", "v7"))


@dataclass(frozen=True, slots=True)
class Summary:
    """What was generated. Byte counts follow core.analysis: manifests, configs, layers (no version file)."""

    root: Path
    images: int  # image folders (second tags included)
    lists: int  # of which multi-arch manifest lists / indexes
    distinct_blobs: int  # distinct blobs, manifests included
    dir_bytes: int  # every folder's manifests and blobs summed: what the skopeo dir tree holds
    distinct_bytes: int  # each distinct blob once: what registry storage holds
    files: int  # files written, version files included
    generated_bytes: int  # bytes generated from scratch (the rest are copies or links)
    linked: bool

    @property
    def shared_percent(self) -> float:
        return 100.0 * (self.dir_bytes - self.distinct_bytes) / self.dir_bytes if self.dir_bytes else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "images": self.images,
            "lists": self.lists,
            "distinct_blobs": self.distinct_blobs,
            "dir_bytes": self.dir_bytes,
            "distinct_bytes": self.distinct_bytes,
            "files": self.files,
            "generated_bytes": self.generated_bytes,
            "linked": self.linked,
        }


@dataclass(slots=True)
class _Platform:
    architecture: str
    variant: str
    layers: list[str]  # blob keys, bottom first


@dataclass(slots=True)
class _ImagePlan:
    index: int
    repository: str
    tags: list[str]
    oci: bool
    platforms: list[_Platform] = field(default_factory=list)

    @property
    def is_list(self) -> bool:
        return len(self.platforms) > 1


def split_layers(layers: int) -> tuple[int, int, int]:
    """(base, mid, app) layer counts of an image with ``layers`` layers: about a third each."""
    if layers <= 0:
        raise ValueError("an image needs at least one layer")
    if layers == 1:
        return 1, 0, 0
    base = max(1, round(layers * 0.3))
    mid = round(layers * 0.3) if layers >= 3 else 0
    return base, mid, layers - base - mid


def _repository(i: int, teams: int) -> str:
    team = i % teams
    if i % 10 == 0:
        return f"app-{i}"  # some flat names, like library images
    if i % 10 == 5:
        return f"team{team}/svc{i % 3}/app-{i}"  # some three-component names
    return f"team{team}/app-{i}"


def _plan(
    images: int, layers: int, rng: random.Random, lists: int, aliases: int, oci_fraction: float
) -> list[_ImagePlan]:
    n_base, n_mid, n_app = split_layers(layers)
    teams = max(1, min(20, images // 10))
    mid_stacks = max(1, images // IMAGES_PER_MID_STACK)
    list_indexes = set(rng.sample(range(images), lists))
    alias_indexes = set(rng.sample(range(images), aliases))
    plans: list[_ImagePlan] = []
    for i in range(images):
        tags = ["1.0", "latest"] if i in alias_indexes else ["1.0"]
        plan = _ImagePlan(i, _repository(i, teams), tags, oci=rng.random() < oci_fraction)
        family = rng.choices(range(BASE_FAMILIES), weights=BASE_WEIGHTS)[0]
        mid = rng.randrange(mid_stacks)
        arches = [("amd64", "")]
        if i in list_indexes:
            arches += list(LIST_PLATFORMS[: 1 + len(plans) % len(LIST_PLATFORMS)])
        for arch, variant in arches:
            platform = f"{arch}{variant}"
            keys = [f"base-{platform}-{family}-{j}" for j in range(n_base)]
            if arch == "amd64":
                keys += [f"mid-{mid}-{j}" for j in range(n_mid)]
                keys += [f"app-{i}-{j}" for j in range(n_app)]
            else:  # other platforms share their own base stacks; no runtime stacks for them
                keys += [f"app-{i}-{platform}-{j}" for j in range(n_mid + n_app)]
            plan.platforms.append(_Platform(arch, variant, keys))
        plans.append(plan)
    return plans


class _Writer:
    """Writes blobs into image folders, each distinct blob generated once and copied or linked after that."""

    def __init__(self, seed: int, link: bool) -> None:
        self.seed = seed
        self.link = link
        self.known: dict[str, tuple[str, int, Path]] = {}  # blob key -> (hex, size, first path)
        self.distinct: dict[str, int] = {}  # hex -> size, every distinct blob incl. manifests
        self.files = 0
        self.generated = 0

    def place(self, source: Path, dest: Path) -> None:
        if self.link:
            os.link(source, dest)
        else:
            shutil.copyfile(source, dest)
        self.files += 1

    def random_blob(self, folder: Path, key: str, size: int) -> tuple[str, int]:
        known = self.known.get(key)
        if known is not None:
            hex_, size, source = known
            self.place(source, folder / hex_)
            return hex_, size
        # A str seed is hashed with sha512 by random.seed: the same bytes on every run and every machine.
        rng = random.Random(f"{self.seed}/{key}")
        h = hashlib.sha256()
        tmp = folder / f".synth-{key}.partial"
        with open(tmp, "wb") as f:
            left = size
            while left > 0:
                chunk = rng.randbytes(min(CHUNK, left))
                h.update(chunk)
                f.write(chunk)
                left -= len(chunk)
        hex_ = h.hexdigest()
        path = folder / hex_
        os.replace(tmp, path)
        self.known[key] = (hex_, size, path)
        self.distinct[hex_] = size
        self.files += 1
        self.generated += size
        return hex_, size

    def small(self, path: Path, data: bytes) -> None:
        path.write_bytes(data)
        self.files += 1
        self.generated += len(data)

    def folder(self, folder: Path, manifest: bytes, children: list[bytes]) -> None:
        """The version file and the manifests, written by the one dir-image builder."""
        write_dir_folder(folder, manifest, children)
        for data in (VERSION, manifest, *children):
            self.files += 1
            self.generated += len(data)
        for data in (manifest, *children):
            self.distinct[hashlib.sha256(data).hexdigest()] = len(data)

    def content(self, folder: Path, data: bytes) -> tuple[str, int]:
        """A small content-addressed file (a config), named by its hex."""
        hex_ = hashlib.sha256(data).hexdigest()
        self.small(folder / hex_, data)
        self.distinct[hex_] = len(data)
        return hex_, len(data)


def _dumps(doc: dict[str, Any], oci: bool) -> bytes:
    # Docker Hub serves schema2 manifests indented by three spaces; OCI builders write compact JSON.
    if oci:
        return json.dumps(doc, separators=(",", ":")).encode()
    return json.dumps(doc, indent=3).encode()


def _config(plan: _ImagePlan, platform: _Platform, layer_hexes: list[str]) -> bytes:
    doc: dict[str, Any] = {
        "architecture": platform.architecture,
        "os": "linux",
        "created": f"2024-01-01T00:00:{plan.index % 60:02d}Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": [f"/usr/local/bin/app-{plan.index}"],
            "Labels": {"org.opencontainers.image.title": plan.repository},
        },
        "rootfs": {
            "type": "layers",
            # Blobs are not real tars, so diff ids are made up, but shaped right and stable per layer.
            "diff_ids": [f"sha256:{hashlib.sha256(b'diff:' + h.encode()).hexdigest()}" for h in layer_hexes],
        },
        "history": [{"created_by": f"synthetic layer {n}"} for n in range(len(layer_hexes))],
    }
    if platform.variant:
        doc["variant"] = platform.variant
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def _write_image(writer: _Writer, folder: Path, plan: _ImagePlan, sizes: dict[str, int]) -> int:
    """Write one image folder; return its manifest and blob bytes (the image total of core.analysis)."""
    folder.mkdir(parents=True)
    total = 0
    manifests: list[tuple[_Platform, bytes]] = []
    for platform in plan.platforms:
        layer_descs: list[dict[str, Any]] = []
        seen: set[str] = set()
        for key in platform.layers:
            hex_, size = writer.random_blob(folder, key, sizes[key])
            layer_descs.append(
                {
                    "mediaType": OCI_LAYER if plan.oci else DOCKER_LAYER,
                    "size": size,
                    "digest": f"sha256:{hex_}",
                }
            )
            if hex_ not in seen:
                seen.add(hex_)
                total += size
        config = _config(plan, platform, [d["digest"][7:] for d in layer_descs])
        config_hex, config_size = writer.content(folder, config)
        total += config_size
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST if plan.oci else DOCKER_V2,
            "config": {
                "mediaType": OCI_CONFIG if plan.oci else DOCKER_CONFIG,
                "size": config_size,
                "digest": f"sha256:{config_hex}",
            },
            "layers": layer_descs,
        }
        manifests.append((platform, _dumps(manifest, plan.oci)))
    if not plan.is_list:
        writer.folder(folder, manifests[0][1], [])
        return total + len(manifests[0][1])
    children: list[dict[str, Any]] = []
    for platform, data in manifests:
        hex_, size = hashlib.sha256(data).hexdigest(), len(data)
        total += size
        plat: dict[str, str] = {"architecture": platform.architecture, "os": "linux"}
        if platform.variant:
            plat["variant"] = platform.variant
        children.append(
            {
                "mediaType": OCI_MANIFEST if plan.oci else DOCKER_V2,
                "size": size,
                "digest": f"sha256:{hex_}",
                "platform": plat,
            }
        )
    top = {"schemaVersion": 2, "mediaType": OCI_INDEX if plan.oci else DOCKER_LIST, "manifests": children}
    top_data = _dumps(top, plan.oci)
    writer.folder(folder, top_data, [data for _, data in manifests])
    total += len(top_data)
    return total


def generate(
    out: Path,
    *,
    images: int,
    layers: int,
    blob_size: int,
    seed: int = 0,
    lists: int = 0,
    aliases: int = 0,
    link: bool = False,
    spread: float = 0.25,
    oci_fraction: float = 0.25,
) -> Summary:
    """Write a skopeo dir tree of ``images`` images (plus ``aliases`` second tags) under ``out``.

    ``blob_size`` is the mean layer size; each layer is within ``spread`` of it (0.25: 75%-125%). ``lists``
    of the images are multi-arch (a manifest list, or an OCI index for OCI images, with 2 or 3 platforms).
    ``aliases`` images also appear as ``<repository>:latest`` (identical folder content). ``out`` must not
    exist or be an empty folder.
    """
    out = Path(out)
    if images < 1:
        raise ValueError("images must be at least 1")
    if blob_size < 1:
        raise ValueError("blob size must be at least 1 byte")
    if not 0 <= spread < 1:
        raise ValueError("spread must be in [0, 1)")
    if not 0 <= lists <= images or not 0 <= aliases <= images:
        raise ValueError("lists and aliases must be between 0 and the image count")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder")
    out.mkdir(parents=True, exist_ok=True)

    rng = random.Random(seed)
    plans = _plan(images, layers, rng, lists, aliases, oci_fraction)
    sizes: dict[str, int] = {}
    for plan in plans:  # sizes drawn in plan order, so they depend on the seed only
        for platform in plan.platforms:
            for key in platform.layers:
                if key not in sizes:
                    sizes[key] = max(1, round(blob_size * rng.uniform(1 - spread, 1 + spread)))

    writer = _Writer(seed, link)
    dir_bytes = 0
    folders = 0
    for plan in plans:
        first = out / f"{plan.repository}:{plan.tags[0]}"
        image_bytes = _write_image(writer, first, plan, sizes)
        dir_bytes += image_bytes
        folders += 1
        for tag in plan.tags[1:]:
            twin = out / f"{plan.repository}:{tag}"
            twin.mkdir(parents=True)
            for entry in sorted(os.listdir(first)):
                writer.place(first / entry, twin / entry)
            dir_bytes += image_bytes
            folders += 1
    return Summary(
        root=out,
        images=folders,
        lists=lists,
        distinct_blobs=len(writer.distinct),
        dir_bytes=dir_bytes,
        distinct_bytes=sum(writer.distinct.values()),
        files=writer.files,
        generated_bytes=writer.generated,
        linked=link,
    )


def parse_size(text: str) -> int:
    """``4096``, ``512K``, ``1M``, ``2G`` (binary units, like ``du``) -> bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    if t and t[-1] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(t)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.synth", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to create (must not exist or be empty)")
    parser.add_argument("--images", type=int, required=True, help="number of images")
    parser.add_argument("--layers", type=int, required=True, help="layers per image (per platform)")
    parser.add_argument("--blob-size", type=parse_size, required=True, help="mean layer size: 4096, 512K, 1M, 2G")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lists", type=int, default=0, help="how many images are multi-arch lists")
    parser.add_argument("--aliases", type=int, default=0, help="how many images also get a second tag")
    parser.add_argument("--spread", type=float, default=0.25, help="layer size spread around the mean (0-1)")
    parser.add_argument("--link", action="store_true", help="hard-link shared blobs instead of copying them")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    try:
        summary = generate(
            args.out,
            images=args.images,
            layers=args.layers,
            blob_size=args.blob_size,
            seed=args.seed,
            lists=args.lists,
            aliases=args.aliases,
            link=args.link,
            spread=args.spread,
        )
    except (ValueError, OSError) as e:
        print(f"synth: error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary.to_json(), indent=2))
    else:
        print(
            f"{summary.images} image folders ({summary.lists} lists), "
            f"{summary.distinct_blobs} distinct blobs; "
            f"dir {summary.dir_bytes} bytes, distinct {summary.distinct_bytes} bytes "
            f"({summary.shared_percent:.1f}% shared) in {summary.root}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
