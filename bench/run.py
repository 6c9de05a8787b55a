#!/usr/bin/env python3
"""regpack benchmark suite: one command generates its data, times regpack against its peers, writes RESULTS.md.

    python -m bench.run            # full run (about 10 minutes on 2 cores, ~10 GB of temporary disk)
    python -m bench.run --quick    # smaller inputs, fewer runs: a smoke test of the suite itself

Data goes to a fresh folder under $TMPDIR (or /tmp) and is removed at the end (--keep keeps it). Every figure
is the median of several runs; competitors are interleaved run by run, so a ratio compares runs made under the
same machine load. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regpack import layouts
from regpack.analysis import analyse
from regpack.bundle import Role
from regpack.verify import verify
from tests.support.synth import Summary, generate, parse_size

REPO = Path(__file__).resolve().parent.parent

PACK_SCRIPT = REPO / "bench" / "baseline" / "pack.sh"
# Uncounted rounds before case 1's timed ones: the first folder-creating runs on a filesystem are the slowest.
PACK_WARMUP = 1
MiB = 1 << 20
GiB = 1 << 30


# ----------------------------------------------------------------------------------------------- helpers


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    # Run regpack as an installed program runs: from compiled bytecode (see compile_core), not recompiling
    # every module at every start because the environment forbids writing it.
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    return e


def compile_core() -> None:
    """Compile core/ to bytecode once, as pip does when it installs a wheel."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "core")], env=env(), check=True)


def regpack(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "regpack", *map(str, args)]


def run(cmd: Sequence[str | Path], cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env(), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc


def rm(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def settle() -> None:
    """Flush dirty pages before a timed run, so a run does not pay for the previous one's writeback."""
    os.sync()
    time.sleep(0.2)


def warm(paths: Sequence[Path]) -> None:
    """Read files once so every competitor starts with them in the page cache."""
    buf = bytearray(MiB)
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def image_folders(root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        if "manifest.json" in filenames:
            found.append(Path(dirpath))
            dirnames.clear()
        dirnames.sort()
    return sorted(found)


def fstype(path: Path) -> str:
    out = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", str(path)], capture_output=True, text=True)
    return (out.stdout.split() or ["unknown"])[0]


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def fmt_s(x: float) -> str:
    return f"{x:.3f} s" if x < 10 else f"{x:.1f} s"


def fmt_runs(xs: Sequence[float]) -> str:
    return ", ".join(f"{x:.3f}" if x < 10 else f"{x:.1f}" for x in xs)


def mib(n: float) -> str:
    return f"{n / MiB:,.1f} MiB"


def rate(nbytes: float, seconds: float) -> str:
    return f"{nbytes / MiB / seconds:,.0f} MiB/s" if seconds > 0 else "n/a"


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


@dataclass
class Timed:
    """Wall-clock seconds of each run of one competitor."""

    name: str
    runs: list[float] = field(default_factory=list)
    synced: list[float] = field(default_factory=list)  # the same runs including a final sync
    note: str = ""

    @property
    def median(self) -> float:
        return median(self.runs)

    @property
    def median_synced(self) -> float:
        return median(self.synced) if self.synced else float("nan")


def evict(folder: Path) -> None:
    """Drop a written tree's pages from the page cache (after a sync), keeping the files.

    Outputs are kept until a case ends (see interleave); without this, gigabytes of them would crowd the
    sources out of the page cache and later runs would read from disk while earlier ones did not.
    """
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def interleave(
    competitors: Sequence[tuple[Timed, Callable[[int], object]]],
    runs: int,
    sync: bool = False,
    after: Callable[[Timed, int], object] | None = None,
    warmup: int = 0,
) -> None:
    """Run every competitor once per round, ``runs`` rounds; ``action(r)`` writes into its own folder for run r.

    ``warmup`` rounds come first and are not counted (their r is negative: -1, -2, ...).

    Outputs are not deleted between runs: on ext4 without a journal (like this machine's), creating thousands
    of files within minutes of deleting thousands is several times slower (the inode allocator skips recently
    freed inodes), which would penalise whichever competitor runs after a deletion. Cases remove their
    outputs when they end.
    """
    n = len(competitors)
    for r in range(-warmup, runs):
        # Each round starts with the next competitor, so none always runs right after the same other one.
        for timed, action in [*competitors[r % n :], *competitors[: r % n]]:
            settle()
            t0 = time.perf_counter()
            action(r)
            t1 = time.perf_counter()
            if r < 0:
                log(f"  warm-up {timed.name}: {t1 - t0:.3f} s (not counted)")
                if after is not None:
                    after(timed, r)
                continue
            timed.runs.append(t1 - t0)
            if sync:
                os.sync()
                timed.synced.append(time.perf_counter() - t0)
            log(f"  round {r + 1}/{runs} {timed.name}: {t1 - t0:.3f} s")
            if after is not None:
                after(timed, r)  # untimed


def peak_rss_kib(cmd: Sequence[str | Path], cwd: Path | None = None) -> tuple[int, float]:
    """(max resident set size in KiB, wall seconds) of one command, as GNU time reports it."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as out:
        t0 = time.perf_counter()
        run(["/usr/bin/time", "-f", "%M", "-o", out.name, *map(str, cmd)], cwd=cwd)
        wall = time.perf_counter() - t0
        text = Path(out.name).read_text().strip().splitlines()
    return int(text[-1]), wall


def machine(work: Path) -> list[tuple[str, str]]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    except OSError:
        pass

    def out(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "unavailable"

    fs = " ".join(out(["findmnt", "-n", "-o", "FSTYPE,SOURCE,OPTIONS", "-T", str(work)]).split())
    if fs.startswith("ext4"):
        device = Path(fs.split()[1]).name
        journals = os.listdir("/proc/fs/jbd2") if os.path.isdir("/proc/fs/jbd2") else []
        fs += ", journal" if any(j.startswith(device) for j in journals) else ", no journal"
    du = shutil.disk_usage(work)
    commit = out(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "core"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return [
        ("CPU", cpu),
        ("cores (os.cpu_count)", str(os.cpu_count())),
        ("RAM", ram),
        ("kernel", platform.release()),
        ("python", sys.version.split()[0]),
        ("skopeo", out(["skopeo", "--version"])),
        ("coreutils", out(["cp", "--version"])),
        ("work folder filesystem", f"{fs} (free {du.free / GiB:.0f} GiB)"),
        ("regpack commit", commit + (" + uncommitted changes in core/" if dirty else "")),
        ("load average at start", loadavg()),
    ]


# ----------------------------------------------------------------------------------------------- cases


@dataclass
class Config:
    quick: bool
    runs: int
    pack_images: int
    pack_layers: int
    pack_blob: int
    skopeo_images: int
    io_bytes: int
    io_images: int
    inspect_images: int
    verify_bytes: int
    rss_sizes: tuple[int, int]
    tmpfs: bool = True
    inode_wait: float = 70.0


class Suite:
    def __init__(self, work: Path, cfg: Config) -> None:
        self.work = work
        self.cfg = cfg
        self.sections: list[str] = []
        self.headline: list[tuple[str, str, str, str]] = []  # (figure, value, goal, met)

    def gen(self, name: str, **kw: Any) -> tuple[Path, Summary]:
        out = self.work / name / "images"
        t0 = time.perf_counter()
        s = generate(out, **kw)
        log(
            f"generated {name}: {s.images} images, {s.distinct_blobs} blobs, dir {mib(s.dir_bytes)}, "
            f"distinct {mib(s.distinct_bytes)} in {time.perf_counter() - t0:.1f} s"
        )
        return out, s

    def wait_for_inodes(self, root: Path) -> None:
        """Let inodes freed by earlier deletions age before a timed run that creates many files.

        ext4 (seen here without a journal) skips inodes freed in the last minute (five, while their inode
        table block is dirty) when it allocates new ones; right after a big deletion, creating files can be
        several times slower. Sync, then wait: what is measured is then regpack, not the previous case's
        cleanup. Other programs deleting files meanwhile still show up in the figures.
        """
        if fstype(root) != "ext4" or self.cfg.inode_wait <= 0:
            return
        os.sync()
        log(f"  waiting {self.cfg.inode_wait:.0f} s for freed inodes to age (ext4)")
        time.sleep(self.cfg.inode_wait)

    def goal(self, figure: str, value: str, goal: str, met: bool) -> None:
        self.headline.append((figure, value, goal, "yes" if met else "**no**"))

    # -- 1. pack, hard-link mode, many images --------------------------------------------------------------

    def _pack_link_on(self, root: Path, where: str) -> tuple[list[str], dict[str, float], Summary]:
        """Time case 1 in a fresh folder under ``root``; return the table lines and the key ratios."""
        cfg = self.cfg
        base = Path(tempfile.mkdtemp(prefix="pack-link-", dir=root))
        try:
            images = base / "images"
            t0 = time.perf_counter()
            s = generate(
                images, images=cfg.pack_images, layers=cfg.pack_layers, blob_size=cfg.pack_blob, seed=1, link=True
            )
            log(f"generated {s.images} images in {base} in {time.perf_counter() - t0:.1f} s")
            ref = base / "regpack-ref"
            run(regpack("pack", images, "-o", ref, "--quiet"))  # the registry tree, for the same-structure floor
            reg_dirs = sum(len(d) for _, d, _ in os.walk(ref))
            reg_files = sum(len(f) for _, _, f in os.walk(ref))
            src_dirs = sum(len(d) for _, d, _ in os.walk(images))
            src_files = sum(len(f) for _, _, f in os.walk(images))
            # The folders alone of the registry tree, created by mkdir (C, one process per few thousand):
            # what any tool writing this format pays before it links a single file.
            folder_list = base / "registry-folders.txt"
            ref_folders = [Path(d).relative_to(ref) for d, _, _ in os.walk(ref) if d != str(ref)]  # parents first
            folder_list.write_text("".join(f"{d}\n" for d in ref_folders))

            regpack_t = Timed("regpack pack")
            blog_t = Timed("blog pack.sh")
            cpal_t = Timed("cp -al (source tree)")
            cpal_reg_t = Timed("cp -al (registry tree)")
            mkdir_t = Timed("mkdir (registry tree folders)")

            def mkdir_folders(r: int) -> None:
                (base / f"mkdir-{r}").mkdir()
                run(["xargs", "-d", "\\n", "-a", folder_list, "mkdir", "--"], cwd=base / f"mkdir-{r}")

            # The script works in ./images -> ./docker: each run gets its own folder with a linked copy.
            for r in range(-PACK_WARMUP, cfg.runs):
                (base / f"blog-{r}").mkdir()
                run(["cp", "-al", images, base / f"blog-{r}" / "images"])
            self.wait_for_inodes(base)
            folders = image_folders(images)
            subset = folders[: cfg.skopeo_images]
            skopeo_t = Timed(f"skopeo copy dir: -> oci: ({len(subset)} images)")

            def skopeo_all(r: int) -> None:
                # Every image into one OCI layout, one after another (each copy rewrites index.json).
                layout = base / f"oci-{r}"
                for folder in subset:
                    ref_name = folder.relative_to(images).as_posix()
                    run(["skopeo", "copy", "--insecure-policy", "-q", f"dir:{folder}", f"oci:{layout}:{ref_name}"])

            interleave(
                [
                    (regpack_t, lambda r: run(regpack("pack", images, "-o", base / f"regpack-{r}", "--quiet"))),
                    (blog_t, lambda r: run(["bash", PACK_SCRIPT], cwd=base / f"blog-{r}")),
                    (cpal_t, lambda r: run(["cp", "-al", images, base / f"cpal-{r}"])),
                    (cpal_reg_t, lambda r: run(["cp", "-al", ref, base / f"cpal-reg-{r}"])),
                    (mkdir_t, mkdir_folders),
                    (skopeo_t, skopeo_all),
                ],
                cfg.runs,
                warmup=PACK_WARMUP,
            )
            # Both outputs must be right, or their speed means nothing. The script's registry root is its folder.
            ours_ok = verify(base / "regpack-0").ok
            blog_ok = verify(base / "blog-0").ok
        finally:
            shutil.rmtree(base, ignore_errors=True)
        skopeo_full = skopeo_t.median * len(folders) / len(subset)
        extrapolated = len(subset) < len(folders)
        r = regpack_t.median
        ratios = {
            "skopeo": skopeo_full / r,
            "cpal": r / cpal_t.median,
            "cpal_reg": r / cpal_reg_t.median,
            "mkdir": mkdir_t.median / cpal_t.median,
        }
        lines = [
            f"### on {where}",
            "",
            f"Source tree {src_dirs} folders / {src_files} files; the registry tree regpack writes has {reg_dirs} "
            f"folders / {reg_files} files.",
            "",
            "| competitor | median | runs (s) | regpack speed-up |",
            "|---|---|---|---|",
            f"| `regpack pack SRC -o DEST` (CLI, Python start included) | {fmt_s(r)} | {fmt_runs(regpack_t.runs)} "
            "| 1.0x |",
            f"| blog `pack.sh` (bench/baseline) | {fmt_s(blog_t.median)} | {fmt_runs(blog_t.runs)} "
            f"| {blog_t.median / r:.1f}x |",
            f"| {skopeo_t.name} | {fmt_s(skopeo_t.median)} | {fmt_runs(skopeo_t.runs)} | |",
            f"| skopeo, all {len(folders)} images{' (extrapolated linearly)' if extrapolated else ''} "
            f"| {fmt_s(skopeo_full)} | | {ratios['skopeo']:.1f}x |",
            f"| `cp -al SRC DEST` (links the source tree) | {fmt_s(cpal_t.median)} | {fmt_runs(cpal_t.runs)} "
            f"| {1 / ratios['cpal']:.2f}x (regpack takes {ratios['cpal']:.1f}x as long) |",
            f"| `cp -al` of regpack's own output tree (same folders and files) | {fmt_s(cpal_reg_t.median)} "
            f"| {fmt_runs(cpal_reg_t.runs)} | {1 / ratios['cpal_reg']:.2f}x "
            f"(regpack takes {ratios['cpal_reg']:.1f}x as long) |",
            f"| `xargs mkdir` of the registry tree's {reg_dirs} folders, nothing else | {fmt_s(mkdir_t.median)} "
            f"| {fmt_runs(mkdir_t.runs)} | {mkdir_t.median / r:.2f}x (the folders alone take "
            f"{ratios['mkdir']:.1f}x as long as `cp -al` of the source) |",
            "",
            f"Outputs verified with `core.verify`: regpack {'ok' if ours_ok else 'FAILED'}, blog script "
            f"{'ok' if blog_ok else 'FAILED'}.",
            "",
        ]
        if extrapolated:
            lines += [
                f"skopeo was timed on the first {len(subset)} of {len(folders)} images and scaled linearly; "
                "each copy rewrites index.json, so the true time for all images is at least that.",
                "",
            ]
        return lines, ratios, s

    def case_pack_link(self) -> None:
        cfg = self.cfg
        log("case 1: pack, hard-link mode")
        fs = fstype(self.work)
        places = [(self.work, f"the work folder's filesystem ({fs}, under $TMPDIR)", "disk")]
        shm = Path("/dev/shm")
        shm_fs = fstype(shm)
        if cfg.tmpfs and shm_fs == "tmpfs" and os.access(shm, os.W_OK) and fs != "tmpfs":
            places.append((shm, "tmpfs (/dev/shm): the same work without the disk", "tmpfs"))
        lines: list[str] = []
        summary: Summary | None = None
        for root, where, key in places:
            more, ratios, summary = self._pack_link_on(root, where)
            lines += more
            self.goal(
                f"pack (links) vs skopeo copy to one OCI layout, {key}",
                f"{ratios['skopeo']:.1f}x faster",
                ">= 20x",
                ratios["skopeo"] >= 20,
            )
            self.goal(
                f"pack (links) vs cp -al of the source tree, {key}",
                f"{ratios['cpal']:.1f}x the time of cp -al (mkdir of the output's folders alone: "
                f"{ratios['mkdir']:.1f}x)",
                "within 3x",
                ratios["cpal"] <= 3,
            )
            self.goal(
                f"pack (links) vs cp -al of the same registry tree (the floor for this format), {key}",
                f"{ratios['cpal_reg']:.2f}x the time of cp -al",
                "within 3x",
                ratios["cpal_reg"] <= 3,
            )

        # The blog script on a bundle with two multi-arch lists: does it survive?
        lists_dir, _ = self.gen("pack-link-lists", images=20, layers=3, blob_size=1024, seed=2, lists=2, link=True)
        proc = run(["bash", PACK_SCRIPT], cwd=lists_dir.parent, check=False)
        blog_lists = f"exit {proc.returncode}: `{(proc.stderr.strip().splitlines() or ['(no message)'])[-1]}`"
        ours_lists = run(regpack("pack", lists_dir, "-o", lists_dir.parent / "ours", "--quiet"), check=False)
        ours_lists_ok = ours_lists.returncode == 0 and verify(lists_dir.parent / "ours").ok
        rm(lists_dir.parent)
        lines += [
            f"On a 20-image bundle with 2 multi-arch lists (`python -m tests.support.synth OUT --images 20 --layers 3 "
            f"--blob-size 1024 --seed 2 --lists 2 --link`) the blog script fails ({blog_lists}); regpack "
            f"{'packs it and the output verifies' if ours_lists_ok else 'FAILS too'}.",
            "",
        ]
        assert summary is not None
        s = summary
        head = [
            "## 1. pack, hard-link mode (many small images)",
            "",
            f"Input: `python -m tests.support.synth OUT --images {cfg.pack_images} --layers {cfg.pack_layers} "
            f"--blob-size {cfg.pack_blob} --seed 1 --link`: {s.images} images, {s.distinct_blobs} distinct blobs, "
            f"{mib(s.dir_bytes)} as dirs, {mib(s.distinct_bytes)} distinct. All competitors are interleaved run "
            "by run; run outputs are kept until the case ends (see bench/README.md on deleting and creating many "
            "files on ext4).",
            "",
        ]
        self.sections.append("\n".join(head + lines))

    # -- 2. pack and unpack, copy mode, I/O bound --------------------------------------------------------

    def case_copy(self) -> None:
        cfg = self.cfg
        log("case 2: pack and unpack, copy mode")
        layers = 8
        # Disk writes vary most from run to run here: five runs, so one slow flush does not make the median.
        runs = max(cfg.runs, 5)
        blob = max(4096, cfg.io_bytes // (cfg.io_images * layers))
        # Space: every run's outputs are kept until the case ends (see interleave): about runs x (2 x distinct
        # + 2 x dir bytes) plus the source; distinct bytes are about half the dir bytes with this sharing.
        free = shutil.disk_usage(self.work).free
        note = ""
        while blob > 4096 and cfg.io_images * layers * blob * (runs * 3 + 2) * 1.2 > free:
            blob //= 2
            note = f" (scaled down to fit {free / GiB:.0f} GiB free)"
        images, s = self.gen("copy", images=cfg.io_images, layers=layers, blob_size=blob, seed=3, link=True)
        base = images.parent
        bundle = layouts.read(images).check()
        blob_files = sorted({b.path for b in bundle.blobs.values() if b.role is not Role.MANIFEST and b.path})
        cp_bytes = sum(p.stat().st_size for p in blob_files)
        warm(blob_files)

        packed = base / "packed"

        def cp_distinct(r: int) -> None:
            flat = base / f"cp-flat-{r}"
            flat.mkdir()
            run(["cp", "--reflink=never", "-t", flat, *blob_files])

        self.wait_for_inodes(base)
        pack_t = Timed("regpack pack --copy")
        cp_t = Timed("cp of the distinct blobs")
        interleave(
            [
                (pack_t, lambda r: run(regpack("pack", images, "-o", base / f"packed-{r}", "--copy", "--quiet"))),
                (cp_t, cp_distinct),
            ],
            runs,
            sync=True,
            after=lambda t, r: evict(base / (f"packed-{r}" if t is pack_t else f"cp-flat-{r}")),
        )
        run(regpack("pack", images, "-o", packed, "--copy", "--quiet"))  # the source for unpack
        pack_bytes = s.distinct_bytes
        evict(packed)
        warm([*packed.rglob("data"), *blob_files])
        unpack_t = Timed("regpack unpack --copy")
        cpr_t = Timed("cp -r of the dir tree")
        interleave(
            [
                (unpack_t, lambda r: run(regpack("unpack", packed, "-o", base / f"unpacked-{r}", "--copy", "--quiet"))),
                (cpr_t, lambda r: run(["cp", "-r", "--reflink=never", images, base / f"cp-r-{r}"])),
            ],
            runs,
            sync=True,
            after=lambda t, r: evict(base / (f"unpacked-{r}" if t is unpack_t else f"cp-r-{r}")),
        )
        rm(base)

        def row(t: Timed, nbytes: int) -> str:
            return (
                f"| {t.name} | {mib(nbytes)} | {fmt_s(t.median)} ({rate(nbytes, t.median)}) "
                f"| {fmt_s(t.median_synced)} ({rate(nbytes, t.median_synced)}) | {fmt_runs(t.synced)} |"
            )

        pack_ratio = (pack_bytes / pack_t.median_synced) / (cp_bytes / cp_t.median_synced)
        pack_ratio_cache = (pack_bytes / pack_t.median) / (cp_bytes / cp_t.median)
        unpack_ratio = cpr_t.median_synced / unpack_t.median_synced
        unpack_ratio_cache = cpr_t.median / unpack_t.median
        lines = [
            "## 2. pack and unpack, copy mode (I/O bound)",
            "",
            f"Input: `python -m tests.support.synth OUT --images {cfg.io_images} --layers {layers} --blob-size {blob} "
            f"--seed 3 --link`{note}: {s.images} images, {s.distinct_blobs} distinct blobs, {mib(s.dir_bytes)} "
            f"as dirs, {mib(s.distinct_bytes)} distinct. Sources were read once before timing (warm page cache "
            "for every competitor; the machine has enough RAM to cache them all; outputs are dropped from the page "
            "cache after each run, so they do not crowd the sources out). Each run starts after a "
            "`sync`; 'returned' is when the command exited (data may still be in the page cache), '+ sync' adds "
            "a `sync` so the bytes are on disk. `sync` flushes the whole machine.",
            "",
            "| competitor | bytes written | returned (rate) | + sync (rate) | runs + sync (s) |",
            "|---|---|---|---|---|",
            row(pack_t, pack_bytes),
            row(cp_t, cp_bytes),
            row(unpack_t, s.dir_bytes),
            row(cpr_t, s.dir_bytes),
            "",
            f"pack --copy reaches {pack_ratio * 100:.0f}% of cp's rate to disk ({pack_ratio_cache * 100:.0f}% "
            f"until return); unpack --copy {unpack_ratio * 100:.0f}% of `cp -r` to disk "
            f"({unpack_ratio_cache * 100:.0f}% until return). cp copies the distinct blobs into one flat folder "
            "(pack's data, without its folders and link files); `cp -r` copies the skopeo tree (the same bytes "
            "unpack writes).",
            "",
        ]
        self.sections.append("\n".join(lines))
        self.goal("pack --copy rate vs cp (to disk)", f"{pack_ratio * 100:.0f}%", ">= 85%", pack_ratio >= 0.85)
        self.goal("unpack --copy rate vs cp -r (to disk)", f"{unpack_ratio * 100:.0f}%", ">= 85%", unpack_ratio >= 0.85)

    # -- 3. inspect a big bundle ---------------------------------------------------------------------------

    def case_inspect(self) -> None:
        cfg = self.cfg
        log("case 3: inspect")
        n = cfg.inspect_images
        images, s = self.gen("inspect", images=n, layers=5, blob_size=4096, seed=4, lists=n // 100, link=True)
        packed = images.parent / "packed"
        run(regpack("pack", images, "-o", packed, "--quiet"))
        runs = max(cfg.runs, 5)
        results: list[tuple[str, Timed]] = []
        for label, path in (("skopeo dir tree", images), ("registry storage", packed)):
            cli = Timed(f"`regpack inspect --json` ({label}, subprocess)")
            inproc = Timed(f"`layouts.read` + `analyse` ({label}, in-process)")
            run(regpack("inspect", path, "--json"))  # warm the dentry and page caches once

            def read_analyse(p: Path = path) -> None:
                b = layouts.read(p).check()
                analyse(b)

            interleave(
                [
                    (cli, lambda r, p=path: run(regpack("inspect", p, "--json"))),
                    (inproc, lambda r: read_analyse()),
                ],
                runs,
            )
            results += [(label, cli), (label, inproc)]
        startup = Timed("python start + import regpack.cli")
        interleave([(startup, lambda r: run([sys.executable, "-c", "import regpack.cli"]))], runs)
        rm(images.parent)
        lines = [
            "## 3. inspect a big bundle",
            "",
            f"Input: `python -m tests.support.synth OUT --images {n} --layers 5 --blob-size 4096 --seed 4 "
            f"--lists {n // 100} --link`: {s.images} images ({s.lists} multi-arch lists), {s.distinct_blobs} "
            "distinct blobs; also the same bundle packed to registry storage. Warm caches.",
            "",
            "| what | median | runs (s) |",
            "|---|---|---|",
            *[f"| {t.name} | {fmt_s(t.median)} | {fmt_runs(t.runs)} |" for _, t in results],
            f"| {startup.name} (part of every CLI figure) | {fmt_s(startup.median)} | {fmt_runs(startup.runs)} |",
            "",
        ]
        self.sections.append("\n".join(lines))
        for label in ("skopeo dir tree", "registry storage"):
            worst = max(t.median for where, t in results if where == label)
            self.goal(f"inspect {n} images, {label} (worst of CLI / in-process)", fmt_s(worst), "< 1 s", worst < 1)

    # -- 4. verify throughput --------------------------------------------------------------------------------

    def case_verify(self) -> None:
        cfg = self.cfg
        log("case 4: verify")
        blob = 32 * MiB if not cfg.quick else 8 * MiB
        # layers=3 gives 1 base + 1 mid + 1 app layer: about one distinct blob per image plus a few shared.
        n = max(4, round(cfg.verify_bytes / blob))
        images, _ = self.gen("verify", images=n, layers=3, blob_size=blob, seed=5, link=True)
        bundle = layouts.read(images).check()
        files = sorted({b.path for b in bundle.blobs.values() if b.role is not Role.MANIFEST and b.path})
        nbytes = sum(p.stat().st_size for p in files)
        warm(files)
        cores = os.cpu_count() or 1

        def hashlib_one_thread() -> None:
            buf = bytearray(MiB)
            view = memoryview(buf)
            for p in files:
                h = hashlib.sha256()
                with open(p, "rb", buffering=0) as f:
                    while k := f.readinto(buf):
                        h.update(view[:k])

        hashed: list[int] = []

        def cli_verify() -> None:
            out = run(regpack("verify", images, "--json")).stdout
            hashed.append(json.loads(out)["bytes_hashed"])

        def inproc_verify() -> None:
            report = verify(images)
            assert report.ok
            hashed.append(report.bytes_hashed)

        one = Timed("Python hashlib, 1 thread")
        sums = Timed("`sha256sum` (one process)")
        sums_p = Timed(f"`xargs -P {cores} sha256sum` ({cores} processes)")
        cli = Timed("`regpack verify --json` (subprocess)")
        inproc = Timed("`regpack.verify.verify` (in-process)")
        per = max(1, len(files) // (cores * 4))
        interleave(
            [
                (one, lambda r: hashlib_one_thread()),
                (sums, lambda r: run(["sha256sum", *files])),
                (
                    sums_p,
                    lambda r: subprocess.run(
                        ["xargs", "-0", "-P", str(cores), "-n", str(per), "sha256sum"],
                        input=b"\0".join(str(p).encode() for p in files),
                        capture_output=True,
                        check=True,
                    ),
                ),
                (cli, lambda r: cli_verify()),
                (inproc, lambda r: inproc_verify()),
            ],
            cfg.runs,
        )
        rm(images.parent)
        assert all(h == nbytes for h in hashed), (hashed, nbytes)
        single = nbytes / one.median
        target = 0.85 * cores * single
        lines = [
            "## 4. verify throughput",
            "",
            f"Input: `python -m tests.support.synth OUT --images {n} --layers 3 --blob-size {blob} --seed 5 --link`: "
            f"{len(files)} distinct config and layer blobs, {mib(nbytes)} hashed by every competitor (a linked "
            "tree: verify hashes each file once by inode). Warm page cache; sha256 throughout.",
            "",
            "| competitor | median | rate | runs (s) |",
            "|---|---|---|---|",
            *[
                f"| {t.name} | {fmt_s(t.median)} | {nbytes / GiB / t.median:.2f} GiB/s | {fmt_runs(t.runs)} |"
                for t in (one, sums, sums_p, cli, inproc)
            ],
            "",
            f"Goal: 85% of {cores} cores x single-thread hashlib = {target / GiB:.2f} GiB/s. CLI figures include "
            "Python start and reading the bundle.",
            "",
        ]
        self.sections.append("\n".join(lines))
        got_cli = nbytes / cli.median
        got_in = nbytes / inproc.median
        self.goal(
            "verify rate vs 85% of cores x 1-thread hashlib",
            f"CLI {got_cli / GiB:.2f}, in-process {got_in / GiB:.2f} GiB/s (target {target / GiB:.2f})",
            ">= 100% of target",
            got_cli >= target,
        )

    # -- 5. peak memory ------------------------------------------------------------------------------------

    def case_rss(self) -> None:
        cfg = self.cfg
        log("case 5: peak RSS")
        rows: dict[str, list[int]] = {}
        inputs = []
        runs = cfg.runs
        for size in cfg.rss_sizes:
            images, s = self.gen(f"rss-{size}", images=16, layers=3, blob_size=size, seed=6, lists=2, link=True)
            base = images.parent
            inputs.append(f"{size // MiB} MiB blobs: {mib(s.dir_bytes)} as dirs, {mib(s.distinct_bytes)} distinct")
            packed = base / "packed"
            run(regpack("pack", images, "-o", packed, "--quiet"))
            commands: list[tuple[str, list[str], Path | None]] = [
                ("inspect --json", regpack("inspect", images, "--json"), None),
                ("pack (links)", regpack("pack", images, "-o", base / "o", "--quiet"), base / "o"),
                ("pack --copy", regpack("pack", images, "-o", base / "o", "--copy", "--quiet"), base / "o"),
                ("unpack (links)", regpack("unpack", packed, "-o", base / "o", "--quiet"), base / "o"),
                ("unpack --copy", regpack("unpack", packed, "-o", base / "o", "--copy", "--quiet"), base / "o"),
                ("verify", regpack("verify", images), None),
            ]
            for label, cmd, out in commands:
                peaks = []
                for _ in range(runs):
                    settle()
                    peak, _ = peak_rss_kib(cmd)
                    peaks.append(peak)
                    if out is not None:
                        rm(out)
                rows.setdefault(label, []).append(int(median(peaks)))
                log(f"  {label} @ {size // MiB} MiB: {peaks} KiB")
            rm(base)
        small, big = cfg.rss_sizes
        lines = [
            "## 5. peak memory (RSS) against blob size",
            "",
            "Input: `python -m tests.support.synth OUT --images 16 --layers 3 --lists 2 --seed 6 --link` at "
            f"`--blob-size {small}` and `--blob-size {big}` ({'; '.join(inputs)}). Peak RSS from "
            "`/usr/bin/time -f %M`, median of the runs.",
            "",
            f"| command | {small // MiB} MiB blobs | {big // MiB} MiB blobs | growth |",
            "|---|---|---|---|",
            *[
                f"| regpack {label} | {a / 1024:.1f} MiB | {b / 1024:.1f} MiB | {b / a:.2f}x |"
                for label, (a, b) in rows.items()
            ],
            "",
        ]
        self.sections.append("\n".join(lines))
        worst = max(b / a for a, b in rows.values())
        self.goal(
            f"peak RSS growth, {small // MiB} -> {big // MiB} MiB blobs ({big // small}x)",
            f"at most {worst:.2f}x",
            "flat (< 1.5x)",
            worst < 1.5,
        )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller inputs and fewer runs (smoke test)")
    p.add_argument("--runs", type=int, help="runs per figure (default 3, quick 2)")
    p.add_argument("--io-size", type=parse_size, help="dir bytes of the copy-mode bundle (default 3G, quick 256M)")
    p.add_argument("--verify-size", type=parse_size, help="bytes hashed by the verify case (default 4G)")
    p.add_argument("--skopeo-images", type=int, help="time skopeo on this many images and extrapolate")
    p.add_argument("--only", help="comma-separated cases: pack-link,copy,inspect,verify,rss (default all)", default="")
    p.add_argument("--out", type=Path, help="results file (default bench/RESULTS.md; quick: RESULTS-quick.md)")
    p.add_argument("--keep", action="store_true", help="keep the generated data")
    p.add_argument(
        "--inode-wait", type=float, help="seconds to let freed inodes age before file-creating cases (70; quick 0)"
    )
    p.add_argument("--no-tmpfs", action="store_true", help="do not repeat case 1 on /dev/shm")
    args = p.parse_args(argv)
    quick = args.quick
    cfg = Config(
        quick=quick,
        runs=args.runs or (2 if quick else 3),
        pack_images=100 if quick else 500,
        pack_layers=6,
        pack_blob=32 * 1024,
        skopeo_images=args.skopeo_images or (30 if quick else 500),
        io_bytes=args.io_size or (256 * MiB if quick else 3 * GiB),
        io_images=100,
        inspect_images=500 if quick else 2000,
        verify_bytes=args.verify_size or (256 * MiB if quick else 4 * GiB),
        rss_sizes=(MiB, 8 * MiB) if quick else (MiB, 32 * MiB),
        tmpfs=not args.no_tmpfs,
        inode_wait=args.inode_wait if args.inode_wait is not None else (0.0 if quick else 70.0),
    )
    for tool in ("skopeo", "cp", "sha256sum", "xargs", "bash", "/usr/bin/time"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} is needed", file=sys.stderr)
            return 2
    compile_core()
    work = Path(tempfile.mkdtemp(prefix="regpack-bench-"))
    log(f"work folder {work}")
    suite = Suite(work, cfg)
    cases = {
        "pack-link": suite.case_pack_link,
        "copy": suite.case_copy,
        "inspect": suite.case_inspect,
        "verify": suite.case_verify,
        "rss": suite.case_rss,
    }
    chosen = [c.strip() for c in args.only.split(",") if c.strip()] or list(cases)
    unknown = [c for c in chosen if c not in cases]
    if unknown:
        print(f"bench: unknown case(s) {unknown}; choose from {list(cases)}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        info = machine(work)
        for name in chosen:
            cases[name]()
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    info.append(("load average at end", loadavg()))
    command = "python -m bench.run" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    text = "\n".join(
        [
            "# regpack benchmark results",
            "",
            f"Produced by `{command}` on {time.strftime('%Y-%m-%d %H:%M %Z')} in "
            f"{(time.perf_counter() - started) / 60:.1f} min"
            + (" (**--quick**: small inputs, not the reference figures)" if quick else "")
            + f". Every figure is the median of {cfg.runs}+ runs.",
            "",
            "## Machine",
            "",
            "| | |",
            "|---|---|",
            *[f"| {k} | {v} |" for k, v in info],
            "",
            "## Goals",
            "",
            "| figure | measured | goal | met |",
            "|---|---|---|---|",
            *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in suite.headline],
            "",
            *suite.sections,
        ]
    )
    out = args.out or REPO / "bench" / ("RESULTS-quick.md" if quick else "RESULTS.md")
    out.write_text(re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n")
    print(text)
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
