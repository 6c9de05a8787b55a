#!/usr/bin/env python3
"""Archive benchmarks: regpack's .tar / .tar.zst writer and reader against GNU tar, zstd and hashlib.

    python -m bench.archive                 # reference run (a few minutes, ~8 GB of temporary disk)
    python -m bench.archive --quick         # smaller inputs, 2 runs: a smoke test of the script
    python -m bench.archive --cases verify,memory   # some cases only: their subsections are replaced

Prints a Markdown section and, unless --quick, puts it into bench/RESULTS.md between the ``archive`` markers
(with --cases, only the subsections of those cases). Every figure is the median of several runs, competitors
interleaved round by round (see bench/README.md).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.run import (
    MiB,
    Timed,
    compile_core,
    fmt_runs,
    fmt_s,
    interleave,
    loadavg,
    log,
    median,
    peak_rss_kib,
    regpack,
    rm,
    run,
    warm,
)
from regpack.archive import DEFAULT_LEVEL
from tests.support.synth import generate

REPO = Path(__file__).resolve().parent.parent
START, END = "<!-- archive: written by bench/archive.py -->", "<!-- /archive -->"


def files_under(root: Path) -> list[Path]:
    return [Path(d, f) for d, _, names in os.walk(root) for f in names]


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in files_under(root))


def cpu_run(cmd: Sequence[str | Path], into: list[float]) -> None:
    """Run ``cmd`` and add its CPU seconds (user + system) to ``into``: on a shared, loaded machine the CPU a
    command needs says more than its wall time, which waits for the other work."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run(cmd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    into.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)


def rate(nbytes: float, seconds: float) -> str:
    return f"{nbytes / MiB / seconds:,.0f} MiB/s"


CASES = ("write", "verify", "unpack", "inspect", "memory")


class Bench:
    def __init__(self, work: Path, runs: int, quick: bool, partial: bool = False) -> None:
        self.work = work
        self.runs = runs
        self.quick = quick
        self.partial = partial
        self.lines: list[str] = []
        self.sections: dict[str, list[str]] = {}  # "### title" -> its lines, for a run of some cases
        self._src: Path | None = None

    def out(self, line: str = "") -> None:
        self.lines.append(line)
        if line.startswith("### "):
            self.sections[line.split("\n", 1)[0]] = []
        if self.sections:
            self.sections[next(reversed(self.sections))].append(line)
        print(line, flush=True)

    def preamble(self) -> None:
        self.out("## Archives")
        self.out()
        self.out(
            f"Machine load average at start: {loadavg()} (2 cores shared with other work: figures are noisy; "
            "ratios compare runs interleaved under the same load)."
        )
        self.out()

    def heading(self, title: str) -> None:
        """A case's subsection; run on its own, it says so and the load it met."""
        self.out(f"### {title}")
        self.out()
        if self.partial:
            self.out(
                f"Measured on its own (`python -m bench.archive --cases ...`), load average at start: {loadavg()}."
            )
            self.out()

    @property
    def write_input(self) -> tuple[int, int]:
        return (40, 4 << 20) if self.quick else (80, 16 << 20)

    def src(self) -> Path:
        """The bundle of the writing case (made on first use)."""
        if self._src is None:
            images, size = self.write_input
            self._src = self.gen("write-src", images=images, layers=3, blob_size=size, seed=11, link=True)
        return self._src

    def table(self, rows: list[tuple[str, ...]]) -> None:
        self.out("| " + " | ".join(rows[0]) + " |")
        self.out("|" + "---|" * len(rows[0]))
        for r in rows[1:]:
            self.out("| " + " | ".join(r) + " |")
        self.out()

    def gen(self, name: str, **kw: object) -> Path:
        root = self.work / name
        generate(root, **kw)  # type: ignore[arg-type]
        return root

    # --- 1 and 2: writing -----------------------------------------------------------------------------------

    def case_write(self) -> None:
        images, size = self.write_input
        src = self.src()
        storage = self.work / "write-storage"
        run(regpack("pack", src, "-o", storage, "--copy", "--quiet"))
        total = tree_bytes(storage)
        warm(files_under(src) + files_under(storage))
        outs = self.work / "write-out"
        outs.mkdir()
        self.heading("Writing")
        self.out(
            f"Input: `python -m tests.support.synth OUT --images {images} --layers 3 --blob-size {size} "
            f"--seed 11 --link`, packed to registry storage of {total / MiB:,.0f} MiB (random blobs: zstd cannot "
            "shrink them, as it cannot shrink gzip layers). Warm page cache; archives written to disk; wall time "
            "until the command returns (not including the final sync)."
        )
        self.out()
        plain = Timed("regpack pack -o r.tar")
        gnu = Timed("tar -cf (of the packed registry tree)")
        zst = Timed(f"regpack pack -o r.tar.zst (default level {DEFAULT_LEVEL})")
        gnu_zst = Timed("tar -I 'zstd -T0' -cf (zstd's default level 3)")
        zst3 = Timed("regpack pack -o r.tar.zst --level 3")
        competitors: list[tuple[Timed, Callable[[int], object]]] = [
            (plain, lambda r: run(regpack("pack", src, "-o", outs / f"p{r}.tar", "--quiet"))),
            (gnu, lambda r: run(["tar", "-cf", outs / f"g{r}.tar", "-C", storage, "."])),
            (zst, lambda r: run(regpack("pack", src, "-o", outs / f"p{r}.tar.zst", "--quiet"))),
            (gnu_zst, lambda r: run(["tar", "-I", "zstd -T0", "-cf", outs / f"g{r}.tar.zst", "-C", storage, "."])),
            (zst3, lambda r: run(regpack("pack", src, "-o", outs / f"p3{r}.tar.zst", "--level", "3", "--quiet"))),
        ]

        def cleanup(t: Timed, r: int) -> None:
            for p in outs.iterdir():
                rm(p)

        interleave(competitors, self.runs, after=cleanup)
        run(regpack("pack", src, "-o", outs / "size.tar.zst", "--quiet"))
        run(["tar", "-I", "zstd -T0", "-cf", outs / "size-gnu.tar.zst", "-C", storage, "."])
        ours, theirs = (outs / "size.tar.zst").stat().st_size, (outs / "size-gnu.tar.zst").stat().st_size
        rows = [("competitor", "median", "throughput", "runs (s)")]
        for t in (plain, gnu, zst, gnu_zst, zst3):
            rows.append((t.name, fmt_s(t.median), rate(total, t.median), fmt_runs(t.runs)))
        self.table(rows)
        self.out(
            f"plain tar: regpack at {gnu.median / plain.median:.0%} of GNU tar's throughput (goal >= 90%); "
            f"zstd: {gnu_zst.median / zst.median:.0%} of `tar -I 'zstd -T0'` (goal >= 90%); compressed sizes "
            f"{ours / MiB:,.1f} MiB (regpack) vs {theirs / MiB:,.1f} MiB (zstd -T0), ratio {ours / theirs:.3f}. "
            "regpack also hashes every byte it writes for the .sha256 sidecar; tar does not."
        )
        self.out()
        self.levels(storage, total)
        rm(outs)
        rm(storage)

    def levels(self, storage: Path, total: int) -> None:
        """What zstd levels give on registry storage: speed and size of (the first 256 MiB of) its tar stream."""
        tar = self.work / "levels.tar"
        run(["tar", "-cf", tar, "-C", storage, "."])
        from regpack.archive import zstd_module

        zstd = zstd_module()
        sample = min(tar.stat().st_size, 256 * MiB)
        rows = [("zstd level", "MiB/s (1 thread)", "size / tar size")]
        for level in (1, 3, 9, 19):
            if self.quick and level == 19:
                continue
            c = zstd.ZstdCompressor(level=level)
            t0 = time.perf_counter()
            size = done = 0
            with open(tar, "rb") as f:
                while done < sample and (chunk := f.read(min(MiB, sample - done))):
                    size += len(c.compress(chunk))
                    done += len(chunk)
            size += len(c.flush())
            dt = time.perf_counter() - t0
            rows.append((str(level), f"{done / MiB / dt:,.0f}", f"{size / done:.4f}"))
        self.out(f"Level choice, on the first {sample / MiB:,.0f} MiB of the same storage as one tar stream:")
        self.out()
        self.table(rows)
        rm(tar)

    # --- 3: inspect --------------------------------------------------------------------------------------------

    def case_inspect(self) -> None:
        images = 400 if self.quick else 2000
        rows = [("archive", "layer bytes", "median", "CPU median (user+sys)", "runs (s)")]
        cases = []
        for label, size in (("small layers", 4096), ("big layers", (64 << 10) if self.quick else (512 << 10))):
            src = self.gen(f"inspect-{size}", images=images, layers=5, blob_size=size, seed=4, lists=20, link=True)
            for suffix in ("tar", "tar.zst"):
                archive = self.work / f"inspect-{size}.{suffix}"
                run(regpack("pack", src, "-o", archive, "--quiet"))
                cases.append((label, archive))
            rm(src)
        timed = []
        cpu: dict[str, list[float]] = {}
        for label, archive in cases:
            warm([archive])
            t = Timed(f"`regpack inspect --json` {archive.name.split('.', 1)[1]}, {label}")
            timed.append((t, archive, label))
            cpu[t.name] = []
        interleave(
            [(t, lambda r, a=a, c=cpu[t.name]: cpu_run(regpack("inspect", "--json", a), c)) for t, a, _ in timed],
            self.runs,
        )
        for t, archive, _ in timed:
            rows.append(
                (
                    t.name,
                    f"{archive.stat().st_size / MiB:,.0f} MiB",
                    fmt_s(t.median),
                    fmt_s(median(cpu[t.name])),
                    fmt_runs(t.runs),
                )
            )
        self.heading("inspect of an archive")
        self.out(
            f"Input: `python -m tests.support.synth OUT --images {images} --layers 5 "
            "--blob-size N --seed 4 --lists 20 --link` at two blob sizes, packed with `regpack pack -o` to .tar "
            "and .tar.zst. Warm page cache."
        )
        self.out()
        self.table(rows)
        for _, archive in cases:
            rm(archive)
            rm(archive.with_name(archive.name + ".sha256"))

    # --- 4: verify, 5: unpack -----------------------------------------------------------------------------------

    def archive(self, suffix: str) -> Path:
        """The writing case's bundle packed to ``v.SUFFIX`` (made on first use), warm in the page cache."""
        archive = self.work / f"v.{suffix}"
        if not archive.exists():
            run(regpack("pack", self.src(), "-o", archive, "--quiet"))
        warm([archive])
        return archive

    def case_verify(self) -> None:
        archive, compressed = self.archive("tar"), self.archive("tar.zst")
        size = archive.stat().st_size

        one_core = Timed("hashlib sha256, one thread, over the .tar file")
        ours = Timed("`regpack verify` of the .tar (every blob + the sidecar)")
        ours_zst = Timed("`regpack verify` of the .tar.zst (decompressed, every blob + the sidecar)")
        cpu: dict[str, list[float]] = {one_core.name: [], ours.name: [], ours_zst.name: []}

        def hashlib_once() -> None:
            before = resource.getrusage(resource.RUSAGE_SELF)  # this process runs no other thread meanwhile
            h = hashlib.sha256()
            buf = bytearray(MiB)
            with open(archive, "rb", buffering=0) as f:
                while n := f.readinto(buf):
                    h.update(memoryview(buf)[:n])
            after = resource.getrusage(resource.RUSAGE_SELF)
            cpu[one_core.name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)

        interleave(
            [
                (one_core, lambda r: hashlib_once()),
                (ours, lambda r: cpu_run(regpack("verify", archive), cpu[ours.name])),
                (ours_zst, lambda r: cpu_run(regpack("verify", compressed), cpu[ours_zst.name])),
            ],
            self.runs,
        )
        self.heading("verify of an archive")
        self.out(
            f"Input: the writing case's bundle packed with `regpack pack -o v.tar` ({size / MiB:,.0f} MiB) and "
            f"`-o v.tar.zst` ({compressed.stat().st_size / MiB:,.0f} MiB). Warm page cache; rates over the .tar's "
            "bytes. verify reads the archive once: the read that indexes it hashes every byte twice (each blob on "
            "the main thread, each part for the sidecar on another), fed by a reading thread."
        )
        self.out()
        rows = [("competitor", "median", "rate", "CPU median (user+sys)", "runs (s)")]
        for t in (one_core, ours, ours_zst):
            rows.append((t.name, fmt_s(t.median), rate(size, t.median), fmt_s(median(cpu[t.name])), fmt_runs(t.runs)))
        self.table(rows)
        self.out(
            f"verify at {one_core.median / ours.median:.0%} of one core of hashlib over the same bytes (goal >= 85%); "
            f"the .tar.zst at {one_core.median / ours_zst.median:.0%} (decompression on top; no goal). CPU: verify "
            f"needs {median(cpu[ours.name]) / median(cpu[one_core.name]):.2f}x hashlib's (two hashes of every byte, "
            "on two cores, in the one read that also indexes the archive; start-up on one)."
        )
        self.out()

    def case_unpack(self) -> None:
        archive = self.archive("tar")
        size = archive.stat().st_size
        outs = self.work / "unpack-out"
        outs.mkdir()
        unpack = Timed("`regpack unpack` of the archive (dir tree, each blob once + hard links)")
        untar = Timed("`tar -xf` of the archive (registry tree)")

        def gnu_x(r: int) -> None:
            (outs / f"t{r}").mkdir()
            run(["tar", "-xf", archive, "-C", outs / f"t{r}"])

        interleave(
            [(unpack, lambda r: run(regpack("unpack", archive, "-o", outs / f"u{r}", "--quiet"))), (untar, gnu_x)],
            self.runs,
            after=lambda t, r: [rm(p) for p in outs.iterdir()],
        )
        self.heading("unpack of an archive")
        self.out(f"Input: the .tar of the verify case ({size / MiB:,.0f} MiB). Warm page cache.")
        self.out()
        rows = [("competitor", "median", "rate", "runs (s)")]
        for t in (unpack, untar):
            rows.append((t.name, fmt_s(t.median), rate(size, t.median), fmt_runs(t.runs)))
        self.table(rows)
        self.out(f"unpack at {untar.median / unpack.median:.0%} of `tar -xf` (goal >= 90%).")
        self.out()
        rm(outs)

    # --- 6: memory -----------------------------------------------------------------------------------------------

    def case_memory(self) -> None:
        rows = [("command", "1 MiB blobs", "32 MiB blobs", "growth")]
        found: dict[str, list[int]] = {}
        images = 8 if self.quick else 16
        for size in (1 << 20, 32 << 20):
            src = self.gen(f"rss-{size}", images=images, layers=3, blob_size=size, seed=6, link=True)
            archive = self.work / f"rss-{size}.tar.zst"
            commands = {
                "pack -o r.tar": regpack("pack", src, "-o", self.work / f"rss-{size}.tar", "--quiet"),
                "pack -o r.tar.zst": regpack("pack", src, "-o", archive, "--quiet"),
                "verify r.tar": regpack("verify", self.work / f"rss-{size}.tar"),
                "verify r.tar.zst": regpack("verify", archive),
                "unpack r.tar.zst": regpack("unpack", archive, "-o", self.work / f"rss-{size}-out", "--quiet"),
            }
            for name, cmd in commands.items():
                kib, _ = peak_rss_kib(cmd)
                found.setdefault(name, []).append(kib)
            for p in self.work.glob(f"rss-{size}*"):
                rm(p)
        for name, (small, big) in found.items():
            rows.append((f"regpack {name}", f"{small / 1024:.1f} MiB", f"{big / 1024:.1f} MiB", f"{big / small:.2f}x"))
        self.heading("peak memory (RSS) against blob size")
        self.out(
            f"Input: `python -m tests.support.synth OUT --images {images} --layers 3 --blob-size N --seed 6 --link` "
            "with 1 MiB and 32 MiB blobs; peak RSS as GNU time reports it (`/usr/bin/time -f %M`)."
        )
        self.out()
        self.table(rows)


def replace_sections(block: str, sections: dict[str, list[str]]) -> str:
    """The archive block with each given subsection (from its ``### `` line to the next one, or to the closing
    line) replaced; a subsection not there yet goes before the first one that follows it in CASES order."""
    order = [TITLES[c] for c in CASES]
    lines = block.split("\n")
    for title, body in sections.items():
        starts = [i for i, line in enumerate(lines) if line.startswith("### ")]
        ends = [i for i, line in enumerate(lines) if line.startswith("Load average at the end") or line == END]
        if title in lines:
            at = lines.index(title)
            stop = min([i for i in starts if i > at] + [i for i in ends if i > at])
            lines[at:stop] = body
            continue
        later = [i for i in starts if lines[i] in order and order.index(lines[i]) > order.index(title)]
        at = min(later + [i for i in ends])
        lines[at:at] = body
    return "\n".join(lines)


TITLES = {
    "write": "### Writing",
    "verify": "### verify of an archive",
    "unpack": "### unpack of an archive",
    "inspect": "### inspect of an archive",
    "memory": "### peak memory (RSS) against blob size",
}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--runs", type=int, default=None)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of: {', '.join(CASES)} (default all)")
    args = p.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if not cases or set(cases) - set(CASES):
        p.error(f"--cases takes some of: {', '.join(CASES)}")
    partial = set(cases) != set(CASES)
    compile_core()
    work = Path(tempfile.mkdtemp(prefix="regpack-bench-archive-"))
    bench = Bench(work, args.runs or (2 if args.quick else 3), args.quick, partial)
    try:
        log(f"work folder {work}")
        if not partial:
            bench.preamble()
        for case in CASES:
            if case in cases:
                getattr(bench, f"case_{case}")()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if not partial:
        bench.out(f"Load average at the end: {loadavg()}. Command: `python -m bench.archive`.")
    if not args.quick:
        results = REPO / "bench" / "RESULTS.md"
        text = results.read_text()
        if partial and START in text:
            at, end = text.index(START), text.index(END) + len(END)
            text = text[:at] + replace_sections(text[at:end], bench.sections) + text[end:]
        else:
            section = f"{START}\n" + "\n".join(bench.lines) + f"\n{END}"
            if START in text:
                text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda m: section, text, flags=re.S)
            else:
                text = text.rstrip() + "\n\n" + section + "\n"
        results.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
