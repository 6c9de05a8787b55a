#!/usr/bin/env python3
"""Where regpack's time goes: phase timings (read, plan, execute) and the top functions under cProfile.

    python -m bench.phases [--images 500] [--layers 6] [--blob-size 32K] [--copy] [--top 15]

Generates one bundle under $TMPDIR, then for pack, unpack, inspect and verify prints the median of each phase
over a few runs, and one cProfile listing per job. Point TMPDIR at a tmpfs (TMPDIR=/dev/shm) to take the disk
out of the figures and see the CPU cost of regpack itself.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from regpack import layouts
from regpack.analysis import analyse
from regpack.engine import execute
from regpack.layouts import registry, skopeo_dir
from regpack.selection import Rename, Selection, check_destinations, select
from regpack.verify import verify
from tests.support.synth import generate, parse_size

REPO = Path(__file__).resolve().parent.parent


def phases(
    label: str, src: Path, dest: Path, make_plan: Callable[..., object], copy: bool, runs: int
) -> dict[str, float]:
    got: dict[str, list[float]] = {"read": [], "plan": [], "execute": [], "total": []}
    for _ in range(runs):
        shutil.rmtree(dest, ignore_errors=True)
        os.sync()
        t0 = time.perf_counter()
        bundle = layouts.read(src).check()
        t1 = time.perf_counter()
        plan = make_plan(bundle)
        t2 = time.perf_counter()
        execute(plan, dest, copy=copy)  # type: ignore[arg-type]
        t3 = time.perf_counter()
        for k, v in (("read", t1 - t0), ("plan", t2 - t1), ("execute", t3 - t2), ("total", t3 - t0)):
            got[k].append(v)
    med = {k: statistics.median(v) for k, v in got.items()}
    print(f"{label:28} " + "  ".join(f"{k} {v:.3f}s" for k, v in med.items()))
    return med


def selection_phase(src: Path, runs: int) -> None:
    """What --exclude and --rename add to a pack, next to reading the bundle: the selection and the check that
    no two images land in one place."""
    reads, selects = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        bundle = layouts.read(src).check()
        t1 = time.perf_counter()
        first = bundle.images[0].repository.split("/")[0]
        chosen = select(bundle, Selection(exclude=("*1",), renames=(Rename(first, "renamed"),)))
        check_destinations(chosen.bundle, lambda image: image.reference.stored, "image")
        t2 = time.perf_counter()
        reads.append(t1 - t0)
        selects.append(t2 - t1)
    read, sel = statistics.median(reads), statistics.median(selects)
    print(
        f"{'select+destinations':28} {sel:.3f}s ({len(chosen.bundle.images)} of {len(bundle.images)} images kept; "
        f"{sel / read * 100:.1f}% of reading the dir tree, {read:.3f}s)"
    )


def profile(label: str, fn: Callable[[], object], top: int) -> None:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    body = out.getvalue()
    start = body.find("   ncalls")
    print(f"\n--- cProfile {label} (by own time) ---")
    print(body[start:].rstrip() if start >= 0 else body)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=500)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--blob-size", type=parse_size, default=32 * 1024)
    p.add_argument("--copy", action="store_true", help="profile copy mode instead of hard links")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="regpack-profile-"))
    try:
        src = work / "images"
        s = generate(src, images=args.images, layers=args.layers, blob_size=args.blob_size, seed=1, link=True)
        print(
            f"bundle: {s.images} images, {s.distinct_blobs} blobs, {s.dir_bytes / 2**20:.1f} MiB as dirs, "
            f"{s.distinct_bytes / 2**20:.1f} MiB distinct, in {work} ({'copy' if args.copy else 'link'} mode)"
        )
        packed = work / "packed"
        phases("pack", src, packed, registry.plan_pack, args.copy, args.runs)
        unpacked = work / "unpacked"
        phases("unpack", packed, unpacked, skopeo_dir.plan_unpack, args.copy, args.runs)
        for label, path in (("inspect dir tree", src), ("inspect registry", packed)):
            t = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                analyse(layouts.read(path).check())
                t.append(time.perf_counter() - t0)
            print(f"{label:28} read+analyse {statistics.median(t):.3f}s")
        selection_phase(src, args.runs)
        t = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            verify(packed)
            t.append(time.perf_counter() - t0)
        print(f"{'verify registry':28} {statistics.median(t):.3f}s")

        def pack_once() -> None:
            shutil.rmtree(work / "p", ignore_errors=True)
            execute(registry.plan_pack(layouts.read(src).check()), work / "p", copy=args.copy)

        def unpack_once() -> None:
            shutil.rmtree(work / "u", ignore_errors=True)
            execute(skopeo_dir.plan_unpack(layouts.read(packed).check()), work / "u", copy=args.copy)

        profile("pack", pack_once, args.top)
        profile("unpack", unpack_once, args.top)
        profile("inspect (dir tree)", lambda: analyse(layouts.read(src).check()), args.top)
        profile("verify (registry)", lambda: verify(packed), args.top)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
