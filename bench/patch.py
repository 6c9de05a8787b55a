#!/usr/bin/env python3
"""Release patches at scale: what a site must receive for the next release, three ways, and how fast diff is.

    python -m bench.patch [--images 500] [--layers 6] [--blob-size 64K] [--change 0.2] [--diff-images 2000]
                          [--runs 3]

Generates release 1 with the synthetic generator of tests/support, derives release 2 from it (a share of the
images get a new top layer and config, a few are removed, a few added, the rest stay as they are), then prints
side by side:

- full: release 2 packed on its own (every distinct blob once);
- whole-image differential: every blob of each image whose digest changed or that is new (what a tool that
  drops only unchanged images ships);
- blob-level patch: ``regpack pack R2 --base R1`` on disk (blob data, links and regpack-patch.json).

Then times ``regpack diff`` of two releases of ``--diff-images`` images each (whole process, median of
``--runs``), against a bundle and against an inventory, and the comparison alone in process.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from regpack import layouts
from regpack.analysis import diff
from regpack.patch import inventory_of
from regpack.units import human_size
from tests.support.synth import generate, parse_size

REPO = Path(__file__).resolve().parent.parent


def log(msg: str) -> None:
    print(f"[patch-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def regpack(*args: str | Path) -> float:
    """Run the CLI as a user does; return wall seconds."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO) + (os.pathsep + os.environ["PYTHONPATH"] if "PYTHONPATH" in os.environ else ""),
    }
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "regpack", *map(str, args)], check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def _write_blob(folder: Path, data: bytes) -> dict[str, object]:
    hex_ = hashlib.sha256(data).hexdigest()
    (folder / hex_).write_bytes(data)
    return {"digest": f"sha256:{hex_}", "size": len(data)}


def derive_release(old: Path, new: Path, change: float, churn: float, seed: int) -> dict[str, int]:
    """Release 2 from release 1: ``change`` of the single-platform images get a new top layer and config,
    ``churn`` of the images are removed and as many added (a new repository, its own top layer)."""
    rng = random.Random(seed)
    folders = sorted(p.parent for p in old.rglob("manifest.json"))
    counts = {"changed": 0, "removed": 0, "added": 0, "unchanged": 0}

    def link_folder(src: Path, dest: Path) -> None:
        dest.mkdir(parents=True)
        for entry in os.listdir(src):
            os.link(src / entry, dest / entry)

    def retop(folder: Path, label: str) -> None:
        manifest = json.loads((folder / "manifest.json").read_bytes())
        top = manifest["layers"][-1]
        os.unlink(folder / top["digest"].split(":")[1])
        old_config = manifest["config"]["digest"].split(":")[1]
        config = json.loads((folder / old_config).read_bytes())
        os.unlink(folder / old_config)
        config["release"] = label
        manifest["config"] = {**manifest["config"], **_write_blob(folder, json.dumps(config).encode())}
        data = rng.randbytes(int(top["size"]))
        manifest["layers"][-1] = {**top, **_write_blob(folder, data)}
        os.unlink(folder / "manifest.json")
        (folder / "manifest.json").write_bytes(json.dumps(manifest, indent=3).encode())

    for folder in folders:
        rel = folder.relative_to(old)
        is_list = "manifests" in json.loads((folder / "manifest.json").read_bytes())
        roll = rng.random()
        if roll < churn:
            counts["removed"] += 1
            continue
        link_folder(folder, new / rel)
        if not is_list and roll < churn + change:
            retop(new / rel, "2")
            counts["changed"] += 1
        else:
            counts["unchanged"] += 1
        if not is_list and rng.random() < churn:
            added = new / rel.parent / f"{rel.name.split(':')[0]}-extra:1.0"
            link_folder(folder, added)
            retop(added, "2-extra")
            counts["added"] += 1
    return counts


def tree_size(root: Path) -> tuple[int, int, int]:
    """(blob data bytes, other file bytes (links, description), file count) under a registry storage."""
    data = other = files = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            n = os.lstat(os.path.join(dirpath, name)).st_size
            files += 1
            if name == "data":
                data += n
            else:
                other += n
    return data, other, files


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--blob-size", type=parse_size, default=parse_size("64K"))
    ap.add_argument("--change", type=float, default=0.2, help="share of images with a new top layer")
    ap.add_argument("--churn", type=float, default=0.02, help="share of images removed (and as many added)")
    ap.add_argument("--diff-images", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="regpack-patch-bench-"))
    try:
        log(f"release 1: {args.images} images, {args.layers} layers of ~{human_size(args.blob_size)}")
        generate(work / "r1", images=args.images, layers=args.layers, blob_size=args.blob_size, lists=args.images // 20,
                 seed=1, link=True)  # fmt: skip
        counts = derive_release(work / "r1", work / "r2", args.change, args.churn, seed=2)
        log(f"release 2: {counts}")
        old, new = layouts.read(work / "r1").check(), layouts.read(work / "r2").check()
        inv = inventory_of(old)
        d = diff(inv.blobs, inv.images, new)
        layers_new = [b for b in new.blobs.values() if b.role.value == "layer"]
        shared = sum(1 for b in layers_new if inv.has(b.digest, b.size))
        shared_bytes = sum(b.size for b in layers_new if inv.has(b.digest, b.size))

        regpack("pack", work / "r1", "-o", work / "base", "--quiet")
        made = [regpack("pack", work / "r2", "--base", work / "base", "-o", work / f"patch{i}", "--quiet")
                for i in range(args.runs)]  # fmt: skip
        data, other, files = tree_size(work / "patch0")
        description = (work / "patch0" / "regpack-patch.json").stat().st_size
        applied = regpack("pack", work / "patch0", "--merge", "-o", work / "base", "--quiet")

        print(f"## Release pair: {args.images} images, {args.layers} layers, blobs ~{human_size(args.blob_size)}\n")
        print(f"release 2: {counts['unchanged']} unchanged, {counts['changed']} changed, {counts['added']} added, "
              f"{counts['removed']} removed (of release 1)")  # fmt: skip
        print(f"layers of release 2 already in release 1: {shared}/{len(layers_new)} "
              f"({100 * shared / len(layers_new):.0f}%), {100 * shared_bytes / sum(b.size for b in layers_new):.0f}% "
              "of layer bytes\n")  # fmt: skip
        print("| what the site receives | bytes | vs full |")
        print("|---|---:|---:|")
        for label, n in (
            ("full bundle of release 2, packed", d.full_bytes),
            ("whole-image differential (every blob of changed/new images)", d.differential_bytes),
            ("blob-level patch (blobs the base lacks + every manifest)", d.patch_bytes),
            ("blob-level patch on disk (blob data)", data),
        ):
            print(f"| {label} | {human_size(n)} ({n}) | {100 * n / d.full_bytes:.1f}% |")
        print(f"\npatch overhead: description {human_size(description)}, links {human_size(other - description)} "
              f"({files} files in all): {100 * other / data:.2f}% of the blob data")  # fmt: skip
        images = len(new.images)
        print(f"  per image of release 2: {(other - description) / images:.0f} bytes of links; per blob left to "
              f"the base: {description / max(1, d.base_blobs):.0f} bytes of description")  # fmt: skip
        print(f"patch vs whole-image differential: {d.patch_bytes / d.differential_bytes:.2f}x the bytes")
        print(f"pack --base (whole process): median {median(made):.2f}s of {args.runs}; "
              f"apply (--merge): {applied:.2f}s")  # fmt: skip

        log(f"diff timing: two releases of {args.diff_images} images")
        generate(work / "d1", images=args.diff_images, layers=args.layers, blob_size=4096, lists=args.diff_images // 20,
                 seed=3, link=True)  # fmt: skip
        derive_release(work / "d1", work / "d2", args.change, args.churn, seed=4)
        regpack("inventory", work / "d1", "-o", work / "d1.json")
        regpack("pack", work / "d1", "-o", work / "d1-storage", "--quiet")
        cases: dict[str, list[float]] = {
            "regpack diff (dir vs dir) --json": [],
            "regpack diff (inventory vs dir) --json": [],
            "regpack diff (registry vs dir) --json": [],
            "reference: regpack inspect NEW --json (one bundle read)": [],
        }
        inproc: list[float] = []
        for _ in range(args.runs):
            for label, argv in zip(
                cases,
                (
                    ("diff", work / "d1", work / "d2", "--json"),
                    ("diff", work / "d1.json", work / "d2", "--json"),
                    ("diff", work / "d1-storage", work / "d2", "--json"),
                    ("inspect", work / "d2", "--json"),
                ),
                strict=True,
            ):
                cases[label].append(regpack(*argv))
        o, n = layouts.read(work / "d1").check(), layouts.read(work / "d2").check()
        for _ in range(args.runs):
            started = time.perf_counter()
            i = inventory_of(o)
            diff(i.blobs, i.images, n)
            inproc.append(time.perf_counter() - started)
        print(f"\n## diff of {args.diff_images} vs {len(n.images)} images (median of {args.runs})\n")
        print("| case | whole process |")
        print("|---|---:|")
        for label, times in cases.items():
            print(f"| {label} | {median(times):.2f}s |")
        print(f"| comparison alone (in process, both read) | {median(inproc) * 1000:.0f} ms |")
        print(f"\nload average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
