#!/usr/bin/env python3
"""How regpack scales to a site's whole registry: time and peak memory per image at 1k / 10k / 100k images.

    python -m bench.scale                         # 1,000 / 10,000 / 100,000 images (~25 min, ~20 GB of disk)
    python -m bench.scale --sizes 1000,10000      # smaller
    python -m bench.scale --baseline /tmp/old     # also time an older regpack side by side, run by run
    python -m bench.scale --sizes 100000 --only scale --commands pack   # pack alone (~10 min at 100,000)

For each size it generates a bundle (4 KiB blobs, 5 layers an image), packs it, and times as subprocesses,
the way users run them: ``pack`` (hard links), ``inspect --json`` and ``verify`` of the packed registry
storage, and ``diff`` when this regpack has it; per image: wall time, CPU time and peak RSS above the
interpreter with regpack imported. In-process it times planning (plan + folder list) per image, the cyclic
collector's pause while reading, and the cost per small file of verify's hashing beyond the hash itself.
Then ``regpack --help`` start-up, and pack of 500 images against ``cp -al`` of regpack's own output tree.

``--baseline DIR`` names a folder holding another regpack package as ``DIR/regpack`` (for instance
``git archive <commit> core | tar -x -C DIR && mv DIR/core DIR/regpack``): its commands run with
``PYTHONPATH=DIR``, interleaved with this one's, and the table gives the ratio. The machine may be shared:
ratios taken in one run are the figures to trust, and CPU time is steadier than wall time under load.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KiB = 1024


def log(msg: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def env(baseline: Path | None = None) -> dict[str, str]:
    e = dict(os.environ)
    e.pop("PYTHONDONTWRITEBYTECODE", None)  # run from bytecode, as an installed program does
    if baseline is not None:
        e["PYTHONPATH"] = str(baseline) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return e


class Measured:
    """One subprocess run: wall seconds, CPU seconds (user + system), peak RSS in KiB."""

    def __init__(self, wall: float, cpu: float, rss_kib: int) -> None:
        self.wall, self.cpu, self.rss_kib = wall, cpu, rss_kib


def measure(cmd: Sequence[str | Path], baseline: Path | None = None) -> Measured:
    """Run ``cmd`` under GNU time; fail loudly when it fails (a fast wrong answer must not count).

    Peak memory is the larger of GNU time's peak RSS (the biggest single process) and the peak of the
    proportional set size (PSS) summed over the command's process tree, sampled every 20 ms: a big registry
    storage is read by two processes (layouts._parallel, a fork sharing its parent's pages until either writes
    them), and what both use counts, each shared page once."""
    fmt = "%e %U %S %M"
    os.sync()  # no run pays for the previous one's writeback
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            ["/usr/bin/time", "-f", fmt, *map(str, cmd)], env=env(baseline), stdout=subprocess.DEVNULL, stderr=err
        )
        tree_peak = 0
        while proc.poll() is None:
            tree_peak = max(tree_peak, tree_pss_kib(proc.pid, include_self=False))
            time.sleep(0.02)
        err.seek(0)
        stderr = err.read()
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}): {stderr[-2000:]}")
    wall, user, system, rss = last.split()
    return Measured(float(wall), float(user) + float(system), max(int(rss), tree_peak))


def tree_pss_kib(pid: int, include_self: bool = True) -> int:
    """Proportional set size in KiB of a process and all its descendants now (0 for those that ended)."""
    total = 0
    if include_self:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                total += next((int(line.split()[1]) for line in rollup if line.startswith("Pss:")), 0)
        except OSError:
            return 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return total
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children = f.read().split()
        except OSError:
            continue
        total += sum(tree_pss_kib(int(child)) for child in children)
    return total


def regpack(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "regpack", *map(str, args)]


def has_command(name: str, baseline: Path | None = None) -> bool:
    proc = subprocess.run(regpack(name, "--help"), env=env(baseline), capture_output=True, text=True)
    return proc.returncode == 0


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


# ------------------------------------------------------------------------------------------- in-process


def plan_per_image(src: Path, runs: int) -> tuple[float, int]:
    """Median seconds of plan_pack + directories() for the bundle at ``src`` (read once), and its folders."""
    from regpack import layouts
    from regpack.layouts import registry

    bundle = layouts.read(src).check()
    times = []
    folders = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        plan = registry.plan_pack(bundle)
        folders = len(plan.directories())
        times.append(time.perf_counter() - t0)
        del plan
    return median(times), folders


def gc_pause_gain(path: Path, runs: int) -> tuple[float, float]:
    """CPU seconds of reading ``path`` with the collector paused as the command line does, and left on."""
    from regpack import layouts
    from regpack.layouts import registry, skopeo_dir

    reader = registry.read if (path / "docker").is_dir() else skopeo_dir.read
    paused: list[float] = []
    running: list[float] = []
    for r in range(runs):
        order: list[tuple[list[float], Callable[[], object]]] = [
            (paused, lambda: layouts.read(path)),
            (running, lambda: reader(path)),
        ]
        for into, fn in order if r % 2 == 0 else order[::-1]:
            gc.collect()
            t0 = time.process_time()
            fn()
            into.append(time.process_time() - t0)
    return median(paused), median(running)


def hashing_overhead(path: Path) -> tuple[int, float, float, float]:
    """Per small file, one thread's CPU time: hashing alone (bytes in memory), verify's read + hash, and a
    read through a fresh 1 MiB buffer per file (the way every file was read before batching)."""
    from regpack import layouts
    from regpack.bundle import Role
    from regpack.digest import hash_file
    from regpack.hashing import _hash_small

    bundle = layouts.read(path)
    files = sorted({(b.file, b.size) for b in bundle.blobs.values() if b.file and b.role is not Role.MANIFEST})
    contents = []
    for name, _ in files:
        with open(name, "rb") as f:
            contents.append(f.read())
    n = len(files)
    best = [float("inf")] * 3
    for _ in range(3):
        t0 = time.thread_time()
        for data in contents:
            hashlib.sha256(data).hexdigest()
        t1 = time.thread_time()
        for name, size in files:
            _hash_small(name, "sha256", size)
        t2 = time.thread_time()
        for name, _ in files:
            hash_file(name, "sha256")
        t3 = time.thread_time()
        best = [min(b, x) for b, x in zip(best, (t1 - t0, t2 - t1, t3 - t2), strict=True)]
    return n, best[0] / n, best[1] / n, best[2] / n


# ------------------------------------------------------------------------------------------------ cases


def import_rss_kib() -> int:
    code = "import regpack.cli, regpack.jobs, regpack.verify, regpack.analysis, regpack.layouts"
    return measure([sys.executable, "-c", code]).rss_kib


def scale_case(
    work: Path,
    sizes: list[int],
    runs: int,
    baseline: Path | None,
    baseline_max: int,
    lines: list[str],
    wanted: frozenset[str] = frozenset({"pack", "inspect", "verify", "diff"}),
) -> None:
    from tests.support.synth import generate

    base_kib = import_rss_kib()
    diff = has_command("diff") and "diff" in wanted
    # pack always runs first: it makes the registry storage the others read
    readers = [c for c in ("inspect --json", "verify") if c.split()[0] in wanted] + (["diff"] if diff else [])
    commands = ["pack", *readers]
    who = [("this", None)] + ([("baseline", baseline)] if baseline is not None else [])
    rows: dict[tuple[str, str, int], list[Measured]] = {}
    plan_rows: list[tuple[int, float, int]] = []
    for n in sizes:
        folder = work / f"n{n}"
        src = folder / "images"
        log(f"{n} images: generating")
        generate(src, images=n, layers=5, blob_size=4096, seed=4, link=True)
        packed = folder / "packed"
        # The registry storage the read-only commands work on, made once by this regpack.
        run_pack = measure(regpack("pack", src, "-o", packed, "--quiet"))
        rows.setdefault(("this", "pack", n), []).append(run_pack)
        # One unmeasured read first: whoever reads a freshly written tree first pays for the kernel's caches.
        if readers:
            measure(regpack("inspect", packed, "--json"))
        other = folder / "other"
        if diff:
            generate(other, images=n, layers=5, blob_size=4096, seed=5, link=True)
        for r in range(runs):
            for label, where in who if r % 2 == 0 else who[::-1]:
                if where is not None and n > baseline_max:
                    continue
                for command in commands:
                    if command == "pack":
                        if label == "this" and r == 0:
                            continue  # the run that made `packed`
                        dest = folder / f"pack-{label}-{r}"
                        got = measure(regpack("pack", src, "-o", dest, "--quiet"), where)
                    elif command == "diff":
                        if label != "this" and not has_command("diff", where):
                            continue
                        got = measure(regpack("diff", packed, other), where)
                    else:
                        got = measure(regpack(*command.split()[:1], packed, *command.split()[1:]), where)
                    rows.setdefault((label, command, n), []).append(got)
                    log(f"{n} images, {label} {command}: {got.wall:.2f} s, {got.rss_kib / 1024:.0f} MiB")
        plan_s, folders = plan_per_image(src, max(runs, 2))
        plan_rows.append((n, plan_s, folders))
        shutil.rmtree(folder, ignore_errors=True)

    lines += [
        "## Time and memory per image",
        "",
        "Input per size N: `python -m tests.support.synth OUT --images N --layers 5 --blob-size 4096 --seed 4 --link`, "
        "packed by `regpack pack`"
        + (f"; {', '.join(c.split()[0] for c in commands[1:])} read that registry storage" if readers else "")
        + (" (diff against the same generator at `--seed 5`)" if diff else "")
        + ". Subprocesses as users run them; "
        f"per-image memory is peak memory (the larger of GNU time's peak RSS and the peak PSS summed over the "
        f"process tree: a big registry storage is read by a forked helper too) minus {base_kib / 1024:.1f} MiB "
        f"(the interpreter with regpack imported), divided by N. Medians of {runs} run(s)"
        + ("; this regpack has no diff command" if "diff" in wanted and not diff else "")
        + ".",
        "",
        "| command | who | images | wall | CPU | per image (wall) | peak memory | per image (memory) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for command in commands:
        for label, _ in who:
            for n in sizes:
                got = rows.get((label, command, n))
                if not got:
                    continue
                wall = median([g.wall for g in got])
                cpu = median([g.cpu for g in got])
                rss = median([g.rss_kib for g in got])
                lines.append(
                    f"| {command} | {label} | {n:,} | {wall:.2f} s | {cpu:.2f} s | {wall / n * 1e6:.0f} us | "
                    f"{rss / 1024:.0f} MiB | {(rss - base_kib) * KiB / n / KiB:.2f} KiB |"
                )
    if baseline is not None:
        lines += ["", "| command | images | this / baseline, wall | CPU | peak memory |", "|---|---|---|---|---|"]
        for command in commands:
            for n in sizes:
                a, b = rows.get(("this", command, n)), rows.get(("baseline", command, n))
                if not a or not b:
                    continue
                lines.append(
                    f"| {command} | {n:,} | {median([g.wall for g in a]) / median([g.wall for g in b]):.2f} | "
                    f"{median([g.cpu for g in a]) / median([g.cpu for g in b]):.2f} | "
                    f"{median([g.rss_kib for g in a]) / median([g.rss_kib for g in b]):.2f} |"
                )
    lines += [
        "",
        "Planning (in-process `registry.plan_pack` + the folder list, bundle read once):",
        "",
        "| images | plan + folders | per image | folders |",
        "|---|---|---|---|",
    ]
    for n, seconds, folders in plan_rows:
        lines.append(f"| {n:,} | {seconds:.3f} s | {seconds / n * 1e6:.1f} us | {folders:,} |")
    per = [s / n for n, s, _ in plan_rows]
    if len(per) > 1:
        lines.append(f"\nPlanning per image, largest / smallest size: {max(per) / min(per):.2f}x (goal: within 1.2x).")
    lines.append("")


def internals_case(work: Path, n: int, lines: list[str]) -> None:
    from regpack.jobs import pack
    from tests.support.synth import generate

    folder = work / "internals"
    generate(folder / "images", images=n, layers=5, blob_size=4096, seed=4, link=True)
    pack(folder / "images", folder / "packed")
    log(f"{n} images: collector pause and hashing overhead")
    rows = []
    for label, path in (("skopeo dir tree", folder / "images"), ("registry storage", folder / "packed")):
        paused, running = gc_pause_gain(path, 5)
        rows.append(f"| {label} | {paused:.3f} s | {running:.3f} s | {(1 - paused / running) * 100:.0f}% |")
    files, hash_only, batched, old = hashing_overhead(folder / "packed")
    shutil.rmtree(folder, ignore_errors=True)
    lines += [
        f"## Reading with the collector paused ({n:,} images)",
        "",
        "CPU time of `layouts.read` (which pauses the cyclic collector when the process has no other thread, "
        "as in the command line) against the same reader with the collector left on; medians of 5, alternating.",
        "",
        "| bundle | paused | left on | gain |",
        "|---|---|---|---|",
        *rows,
        "",
        f"## verify: cost per small file beyond hashing ({files:,} files of ~4 KiB)",
        "",
        "One thread's CPU time per file, best of 3: hashing the bytes alone; verify's reading (one open, one "
        "read sized to the file, one close) plus hashing; and the former reading through a fresh 1 MiB buffer.",
        "",
        "| | per file | beyond hashing |",
        "|---|---|---|",
        f"| hashing alone | {hash_only * 1e6:.1f} us | |",
        f"| verify's read + hash (sized buffer) | {batched * 1e6:.1f} us | {(batched - hash_only) * 1e6:.1f} us |",
        f"| read through a 1 MiB buffer + hash | {old * 1e6:.1f} us | {(old - hash_only) * 1e6:.1f} us |",
        "",
    ]


def startup_case(runs: int, baseline: Path | None, lines: list[str]) -> None:
    cases: list[tuple[str, list[str], Path | None]] = [
        ("python -c pass (the floor)", [sys.executable, "-c", "pass"], None),
        ("regpack --help", regpack("--help"), None),
        ("regpack verify --help", regpack("verify", "--help"), None),
    ]
    if baseline is not None:
        cases.append(("regpack --help (baseline)", regpack("--help"), baseline))
    times: dict[str, list[float]] = {label: [] for label, _, _ in cases}
    for r in range(runs):
        for label, cmd, where in cases[r % len(cases) :] + cases[: r % len(cases)]:
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env(where), stdout=subprocess.DEVNULL, check=True)
            times[label].append(time.perf_counter() - t0)
    floor = median(times[cases[0][0]])
    lines += [
        f"## Start-up (medians and best of {runs}, interleaved)",
        "",
        "| command | median | best | above `python -c pass` (median) |",
        "|---|---|---|---|",
    ]
    for label, got in times.items():
        above = (median(got) - floor) * 1000
        lines.append(f"| `{label}` | {median(got) * 1000:.0f} ms | {min(got) * 1000:.0f} ms | {above:.0f} ms |")
    lines.append("")


def pack_vs_cp_case(work: Path, runs: int, lines: list[str]) -> None:
    from tests.support.synth import generate

    folder = work / "pack500"
    src = folder / "images"
    generate(src, images=500, layers=6, blob_size=32 * 1024, seed=1, link=True)
    ref = folder / "ref"
    subprocess.run(regpack("pack", src, "-o", ref, "--quiet"), env=env(), check=True)
    ours: list[float] = []
    cp: list[float] = []
    for r in range(-1, runs):  # one uncounted warm-up round
        order: list[tuple[list[float], list[str | Path]]] = [
            (ours, regpack("pack", src, "-o", folder / f"ours{r}", "--quiet")),
            (cp, ["cp", "-al", ref, folder / f"cp{r}"]),
        ]
        for into, cmd in order if r % 2 == 0 else order[::-1]:
            os.sync()
            t0 = time.perf_counter()
            subprocess.run(list(map(str, cmd)), env=env(), check=True)
            if r >= 0:
                into.append(time.perf_counter() - t0)
    shutil.rmtree(folder, ignore_errors=True)
    ratio = median(ours) / median(cp)
    lines += [
        "## pack of 500 images against `cp -al` of regpack's own output tree",
        "",
        "Input: `python -m tests.support.synth OUT --images 500 --layers 6 --blob-size 32768 --seed 1 --link`; "
        f"`regpack pack SRC -o DEST` (Python start included) and `cp -al` of a registry tree regpack wrote, "
        f"interleaved, after `sync`, one uncounted warm-up round, {runs} counted.",
        "",
        "| competitor | median | runs (s) |",
        "|---|---|---|",
        f"| `regpack pack` | {median(ours):.3f} s | {', '.join(f'{x:.3f}' for x in ours)} |",
        f"| `cp -al` of the registry tree | {median(cp):.3f} s | {', '.join(f'{x:.3f}' for x in cp)} |",
        "",
        f"regpack takes {ratio:.2f}x the time of `cp -al` (goal: within 1.25x).",
        "",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1000,10000,100000", help="image counts, comma-separated")
    p.add_argument("--runs", type=int, default=1, help="runs per command and size (default 1)")
    p.add_argument("--baseline", type=Path, help="a folder holding another regpack as DIR/regpack, timed beside")
    p.add_argument("--only", default="scale,internals,startup,pack500", help="cases to run, comma-separated")
    p.add_argument("--baseline-max", type=int, default=20000, help="no baseline runs above this many images")
    p.add_argument("--commands", default="pack,inspect,verify,diff", help="scale: commands to time, comma-separated")
    p.add_argument("--internals-images", type=int, default=10000)
    p.add_argument("--out", type=Path, help="write the Markdown here too")
    args = p.parse_args(argv)
    if args.baseline is not None and not (args.baseline / "regpack").is_dir():
        p.error(f"{args.baseline}/regpack does not exist")
    only = set(args.only.split(","))
    sizes = [int(x) for x in args.sizes.split(",")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "core")], env=env(), check=True)
    work = Path(tempfile.mkdtemp(prefix="regpack-scale-"))
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    lines = [
        f"# regpack at scale ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit.stdout.strip()})",
        "",
        f"`python -m bench.scale {' '.join(argv if argv is not None else sys.argv[1:])}`; {os.cpu_count()} cores, "
        f"load average at start {' '.join(f'{x:.2f}' for x in os.getloadavg())}. Work folder: {work}.",
        "",
    ]
    try:
        if "startup" in only:
            startup_case(21, args.baseline, lines)
        if "internals" in only:
            internals_case(work, args.internals_images, lines)
        if "pack500" in only:
            pack_vs_cp_case(work, 5, lines)
        if "scale" in only:
            wanted = frozenset(args.commands.split(","))
            scale_case(work, sizes, args.runs, args.baseline, args.baseline_max, lines, wanted)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines.append(f"Load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}.")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
