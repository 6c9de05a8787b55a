"""Write skopeo ``dir:`` bundles made of real (tiny) images: the shipped sample and synthetic test bundles.

Everything is deterministic: gzip headers carry mtime 0, tar entries a fixed mtime and owner, and "random"
file contents come from a seeded generator, so running this twice gives byte-identical folders.

From a checkout:

    python -m tests.support.sample                      # regenerate resources/sample/
    python -m tests.support.sample DEST --images 2000   # a synthetic bundle of 2,000 images
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import random
import shutil
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.ocibuild import DOCKER_CONFIG, DOCKER_LIST, OCI_CONFIG, OCI_MANIFEST, write_dir_folder
from tests.support.ocibuild import DOCKER_LAYER_GZIP as DOCKER_LAYER
from tests.support.ocibuild import DOCKER_MANIFEST as DOCKER_V2
from tests.support.ocibuild import OCI_LAYER_GZIP as OCI_LAYER

TAR_MTIME = 1_700_000_000  # fixed so layers are reproducible
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "resources" / "sample"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Layer:
    """A gzip-compressed tar layer: ``data`` is what is stored, ``diff_id`` the hash of the plain tar."""

    data: bytes
    diff_id: str

    @property
    def hex(self) -> str:
        return sha256(self.data)


def make_layer(files: dict[str, bytes]) -> Layer:
    """A real gzip tar holding ``files`` (paths relative to /) and their parent folders, in sorted order."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        folders: set[str] = set()
        for name in sorted(files):
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                folder = "/".join(parts[:i])
                if folder not in folders:
                    folders.add(folder)
                    info = tarfile.TarInfo(folder + "/")
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    info.mtime = TAR_MTIME
                    info.uname = info.gname = "root"
                    tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o755 if name.startswith(("bin/", "usr/bin/", "app/")) else 0o644
            info.mtime = TAR_MTIME
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(files[name]))
    plain = raw.getvalue()
    stored = bytearray(gzip.compress(plain, compresslevel=9, mtime=0))
    stored[9] = 3  # the header's OS byte: Unix, as Python up to 3.11 writes it (3.12 writes 255, "unknown")
    return Layer(bytes(stored), "sha256:" + sha256(plain))


def make_config(
    layers: list[Layer],
    *,
    os_name: str = "linux",
    arch: str = "amd64",
    variant: str = "",
    env: list[str] | None = None,
    cmd: list[str] | None = None,
    entrypoint: list[str] | None = None,
    workdir: str = "",
    labels: dict[str, str] | None = None,
    created: str = "2024-05-01T12:00:00Z",
    history: list[str] | None = None,
) -> bytes:
    config: dict[str, object] = {"Env": env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
    if entrypoint:
        config["Entrypoint"] = entrypoint
    if cmd:
        config["Cmd"] = cmd
    if workdir:
        config["WorkingDir"] = workdir
    if labels:
        config["Labels"] = labels
    doc: dict[str, object] = {
        "architecture": arch,
        "config": config,
        "created": created,
        "history": [{"created": created, "created_by": h} for h in (history or [])],
        "os": os_name,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
    }
    if variant:
        doc["variant"] = variant
    return json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"


def make_manifest(config: bytes, layers: list[Layer], *, oci: bool = False) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST if oci else DOCKER_V2,
        "config": {
            "mediaType": OCI_CONFIG if oci else DOCKER_CONFIG,
            "size": len(config),
            "digest": "sha256:" + sha256(config),
        },
        "layers": [
            {"mediaType": OCI_LAYER if oci else DOCKER_LAYER, "size": len(layer.data), "digest": "sha256:" + layer.hex}
            for layer in layers
        ],
    }
    # skopeo keeps manifests byte-for-byte as served; registries commonly serve 3-space indented JSON.
    return json.dumps(doc, indent=3).encode()


def make_list(children: list[tuple[bytes, str, str, str]]) -> bytes:
    """A Docker manifest list of (manifest bytes, os, architecture, variant)."""
    entries = []
    for data, os_name, arch, variant in children:
        platform = {"architecture": arch, "os": os_name}
        if variant:
            platform["variant"] = variant
        entries.append(
            {"mediaType": DOCKER_V2, "size": len(data), "digest": "sha256:" + sha256(data), "platform": platform}
        )
    return json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": entries}, indent=3).encode()


@dataclass
class ImageDir:
    """One skopeo dir folder: top manifest, platform manifests (for a list) and blobs by hex."""

    reference: str  # "repo:tag", nested repositories become nested folders
    manifest: bytes
    children: list[bytes] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)

    def add(self, config: bytes, layers: list[Layer]) -> None:
        self.blobs[sha256(config)] = config
        for layer in layers:
            self.blobs[layer.hex] = layer.data

    def write(self, root: Path) -> Path:
        return write_dir_folder(root / self.reference, self.manifest, self.children, self.blobs.values())


def _noise(seed: str, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def sample_images() -> list[ImageDir]:
    """The bundle shipped for first launch: four images sharing one base layer, one of them multi-arch."""
    os_release = b'NAME="Demo Linux"\nID=demo\nVERSION_ID=3.19.1\nPRETTY_NAME="Demo Linux v3.19"\n'
    base = make_layer(
        {
            "etc/os-release": os_release,
            "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n",
            "bin/busybox": _noise("base-amd64", 8_000),
        }
    )
    base_arm = make_layer(
        {
            "etc/os-release": os_release,
            "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n",
            "bin/busybox": _noise("base-arm64", 7_600),
        }
    )
    history_base = ["/bin/sh -c #(nop) ADD file:demo-rootfs.tar.gz in / "]
    images: list[ImageDir] = []

    cfg = make_config([base], cmd=["/bin/sh"], history=[*history_base, '/bin/sh -c #(nop)  CMD ["/bin/sh"]'])
    img = ImageDir("demo/base:3.19", make_manifest(cfg, [base]))
    img.add(cfg, [base])
    images.append(img)

    web = make_layer(
        {
            "srv/www/index.html": b"<!doctype html><title>demo</title><h1>It works</h1>\n",
            "usr/bin/httpd": _noise("httpd", 2_000),
            "etc/httpd.conf": b"listen 8080\nroot /srv/www\n",
        }
    )
    cfg = make_config(
        [base, web],
        env=["PATH=/usr/local/bin:/usr/bin:/bin", "PORT=8080", "DOC_ROOT=/srv/www"],
        entrypoint=["/usr/bin/httpd"],
        cmd=["-f", "-c", "/etc/httpd.conf"],
        workdir="/srv/www",
        labels={"org.opencontainers.image.title": "demo web"},
        created="2024-05-02T09:30:00Z",
        history=[*history_base, "COPY httpd /usr/bin/httpd", "COPY www /srv/www"],
    )
    img = ImageDir("demo/web:1.0", make_manifest(cfg, [base, web]))
    img.add(cfg, [base, web])
    images.append(img)

    api = make_layer({"app/api": _noise("api", 2_500), "app/config.yaml": b"listen: :9000\nlog: info\n"})
    cfg = make_config(
        [base, api],
        env=["PATH=/usr/local/bin:/usr/bin:/bin", "API_LISTEN=:9000", "LOG_LEVEL=info"],
        entrypoint=["/app/api"],
        cmd=["--config", "/app/config.yaml"],
        workdir="/app",
        created="2024-05-03T16:45:00Z",
        history=[*history_base, "COPY api /app/"],
    )
    img = ImageDir("api:2.1", make_manifest(cfg, [base, api], oci=True))
    img.add(cfg, [base, api])
    images.append(img)

    # A multi-arch image copied with --all: the list is manifest.json, platform manifests <hex>.manifest.json.
    tools_amd = make_layer({"usr/bin/demo-tool": _noise("tool-amd64", 1_500)})
    tools_arm = make_layer({"usr/bin/demo-tool": _noise("tool-arm64", 1_400)})
    cfg_amd = make_config(
        [base, tools_amd],
        cmd=["demo-tool", "--help"],
        created="2024-05-04T08:00:00Z",
        history=[*history_base, "COPY demo-tool /usr/bin/"],
    )
    cfg_arm = make_config(
        [base_arm, tools_arm],
        arch="arm64",
        variant="v8",
        cmd=["demo-tool", "--help"],
        created="2024-05-04T08:00:00Z",
        history=[*history_base, "COPY demo-tool /usr/bin/"],
    )
    m_amd = make_manifest(cfg_amd, [base, tools_amd])
    m_arm = make_manifest(cfg_arm, [base_arm, tools_arm])
    img = ImageDir("demo/tools:1.0", make_list([(m_amd, "linux", "amd64", ""), (m_arm, "linux", "arm64", "v8")]))
    img.children = [m_amd, m_arm]
    img.add(cfg_amd, [base, tools_amd])
    img.add(cfg_arm, [base_arm, tools_arm])
    images.append(img)
    return images


def synthetic_images(
    count: int,
    *,
    seed: int = 0,
    blob_size: tuple[int, int] = (512, 4096),
    bases: int | None = None,
    middles: int | None = None,
    lists_every: int = 0,
) -> list[ImageDir]:
    """``count`` images with realistic sharing: a few base layers used by many images, a larger pool of
    middle layers (runtimes) used by some, and one layer of its own per image. Every ``lists_every``-th image
    is a two-platform manifest list (0: none)."""
    rng = random.Random(seed)
    bases = bases or max(1, min(20, count // 50 or 1))
    middles = middles or max(1, count // 10)

    def blob(tag: str) -> Layer:
        size = rng.randint(*blob_size)
        return make_layer({f"data/{tag}.bin": random.Random(f"{seed}-{tag}").randbytes(size)})

    base_layers = [blob(f"base{i}") for i in range(bases)]
    middle_layers = [blob(f"mid{i}") for i in range(middles)]
    images: list[ImageDir] = []
    teams = ["team-a", "team-b", "platform", "data", "edge"]
    for i in range(count):
        repo = f"{teams[i % len(teams)]}/svc{i // 3:04d}"
        tag = f"1.{i % 3}"
        base = base_layers[rng.randrange(bases)]
        mids = rng.sample(middle_layers, k=min(len(middle_layers), rng.randint(0, 2)))
        own = blob(f"own{i}")
        layers = [base, *mids, own]
        cfg = make_config(
            layers,
            env=["PATH=/usr/bin:/bin", f"SERVICE_ID={i}"],
            cmd=[f"/svc/{i}"],
            created=f"2024-01-{1 + i % 28:02d}T00:00:00Z",
        )
        if lists_every and i % lists_every == lists_every - 1:
            arm_own = blob(f"own{i}-arm64")
            arm_layers = [base, arm_own]
            cfg_arm = make_config(arm_layers, arch="arm64", cmd=[f"/svc/{i}"])
            m_amd = make_manifest(cfg, layers)
            m_arm = make_manifest(cfg_arm, arm_layers)
            img = ImageDir(f"{repo}:{tag}", make_list([(m_amd, "linux", "amd64", ""), (m_arm, "linux", "arm64", "")]))
            img.children = [m_amd, m_arm]
            img.add(cfg, layers)
            img.add(cfg_arm, arm_layers)
        else:
            img = ImageDir(f"{repo}:{tag}", make_manifest(cfg, layers, oci=i % 4 == 0))
            img.add(cfg, layers)
        images.append(img)
    return images


def write_bundle(dest: Path, images: list[ImageDir]) -> Path:
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest}: exists and is not empty")
    dest.mkdir(parents=True, exist_ok=True)
    for image in images:
        image.write(dest)
    return dest


def make_sample(dest: Path = SAMPLE_DIR) -> Path:
    return write_bundle(dest, sample_images())


def make_synthetic(dest: Path, count: int, **options: object) -> Path:
    return write_bundle(dest, synthetic_images(count, **options))  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dest", nargs="?", type=Path, help="where to write (default: the shipped sample folder)")
    parser.add_argument("--images", type=int, default=0, help="write a synthetic bundle of this many images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lists-every", type=int, default=0, help="every N-th synthetic image is a manifest list")
    args = parser.parse_args(argv)
    if args.images:
        if args.dest is None:
            parser.error("a synthetic bundle needs DEST")
        make_synthetic(args.dest, args.images, seed=args.seed, lists_every=args.lists_every)
        print(f"wrote {args.images} images to {args.dest}")
        return 0
    dest = args.dest or SAMPLE_DIR
    if dest == SAMPLE_DIR and dest.exists():
        shutil.rmtree(dest)  # the shipped sample is regenerated from scratch
    make_sample(dest)
    total = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"wrote the sample bundle to {dest} ({total} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
