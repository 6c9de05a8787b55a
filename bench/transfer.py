#!/usr/bin/env python3
"""Push benchmark: ``regpack push`` of a generated bundle against ``skopeo sync --src dir`` of the same tree, into
the same kind of loopback docker-registry (a fresh, empty one for every timed first push), default jobs.

    python -m bench.transfer                 # 200 images, 3 rounds
    python -m bench.transfer --images 40 --rounds 1

Timed, whole-process medians of ``--rounds`` interleaved rounds:
- regpack push of the skopeo dir tree; and of the same bundle packed as registry storage (read through a
  loopback read-only registry: the path storage takes to skopeo);
- the hard-linked skopeo dir view the OCI layout takes (``regpack unpack`` of the storage, hard links);
- skopeo sync --src dir of the same tree (it keeps only the last component of nested names: it writes other
  repositories, not fewer blobs);
- a rerun of regpack push and of skopeo sync into the registry that holds everything already.
Bytes that arrived are the blob bytes in the destination's storage after each first push (they must be equal).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.synth import generate
from tests.support.tools import start_registry

REPO = Path(__file__).resolve().parent.parent


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return e


def timed(argv: list[str]) -> float:
    started = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, env=env())
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return seconds


def stored_blob_bytes(storage: Path) -> int:
    blobs = storage / "docker" / "registry" / "v2" / "blobs"
    return sum(p.stat().st_size for p in blobs.rglob("data")) if blobs.is_dir() else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--blob-size", type=int, default=256 << 10)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="regpack-bench-transfer-"))
    python = sys.executable
    try:
        tree = work / "tree"
        summary = generate(
            tree,
            images=args.images,
            layers=args.layers,
            blob_size=args.blob_size,
            seed=3,
            lists=min(10, args.images // 2),
        )
        print(f"bundle: {summary}", file=sys.stderr)
        storage = work / "packed"
        subprocess.run([python, "-m", "regpack", "pack", str(tree), "-o", str(storage), "-q"], check=True, env=env())

        times: dict[str, list[float]] = {}
        arrived: dict[str, int] = {}

        def fresh(name: str, push: Callable[[str], list[str]], rerun: bool) -> None:
            dest = work / f"dest-{name}"
            shutil.rmtree(dest, ignore_errors=True)
            reg = start_registry(dest, work / f"run-{name}")
            try:
                times.setdefault(name, []).append(timed(push(reg.host)))
                arrived[name] = stored_blob_bytes(dest)
                if rerun:
                    times.setdefault(f"{name} rerun", []).append(timed(push(reg.host)))
            finally:
                reg.stop()

        def regpack_push(src: Path) -> Callable[[str], list[str]]:
            return lambda host: [python, "-m", "regpack", "push", str(src), f"{host}/b", "--tls-verify=false", "-q"]

        def sync(host: str) -> list[str]:
            return [
                "skopeo", "sync", "--all", "--preserve-digests", "--src", "dir", "--dest", "docker",
                "--dest-tls-verify=false", str(tree), f"{host}/b",
            ]  # fmt: skip

        for i in range(args.rounds):
            order = [
                ("regpack push (dir tree)", regpack_push(tree), True),
                ("skopeo sync", sync, True),
                ("regpack push (registry storage)", regpack_push(storage), False),
            ]
            for name, push, rerun in order[i % 3 :] + order[: i % 3]:
                print(f"round {i + 1}: {name}", file=sys.stderr)
                fresh(name, push, rerun)
            view = work / "view"
            shutil.rmtree(view, ignore_errors=True)
            times.setdefault("hard-linked dir view (unpack)", []).append(
                timed([python, "-m", "regpack", "unpack", str(storage), "-o", str(view), "-q"])
            )

        medians = {name: statistics.median(t) for name, t in times.items()}
        base = medians["skopeo sync"]
        print(f"\n{args.images} images, {args.layers} layers of ~{args.blob_size >> 10} KiB, medians of {args.rounds}:")
        for name, m in medians.items():
            got = f", {arrived[name]:,} blob bytes arrived" if name in arrived else ""
            print(f"  {name:36} {m:7.2f} s  ({m / base:.2f}x skopeo sync){got}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
