"""How long the window takes to show a big bundle, and how much memory it needs.

Generates a synthetic skopeo dir bundle (default 2,000 images: small random blobs, a few base layers shared by
many images, runtime layers shared by some, one layer of its own per image, every 25th image a two-platform
list), then launches ``python -m regpack.gui --exit-after-load`` on it (offscreen) and measures the time from
process launch to a populated window, and the peak RSS of that process. The shipped 4-image sample is timed
the same way, to tell Qt's start-up cost from the cost of the bundle.

Then it packs that bundle through the window's job controller (offscreen, in this process, as the Pack
button does) and presses Cancel once a third of the bytes are done: it reports the cancel latency (Cancel
pressed -> the job reported cancelled and the window free again) and the time until the partial output is
gone from disk (removed in the background).

    python -m bench.gui_load [--images 2000] [--runs 3] [--keep DIR] [--copy]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from regpack.analysis import analyse
from regpack.layouts import read
from tests.support.sample import SAMPLE_DIR, make_synthetic

REPO = Path(__file__).resolve().parents[1]


def launch(path: Path) -> dict[str, float]:
    """One window launch: seconds from exec to populated window, and the window process's peak RSS."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "regpack.gui", "--exit-after-load", str(path)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    populated = time.perf_counter() - started
    proc.wait(timeout=120)
    if proc.returncode != 0 or not line:
        raise SystemExit(f"window exited with {proc.returncode} before showing {path}")
    figures = json.loads(line)
    return {
        "populated_s": populated,
        "load_after_show_s": figures["load_seconds"],
        "rss_mib": figures["max_rss_kib"] / 1024,
        "images": figures["images"],
    }


def cancel_once(bundle: Path, dest: Path, *, copy: bool) -> dict[str, float]:
    """Pack through the JobController, press Cancel at a third of the bytes; seconds to stop and to clean."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from regpack import jobs
    from regpack.gui.jobs import Job, JobController, JobKind

    app = QApplication.instance() or QApplication([])
    controller = JobController()
    marks: dict[str, float] = {}
    loop = QEventLoop()

    def on_progress(job: Job, text: object) -> None:
        if "cancel" not in marks and getattr(text, "fraction", 0) >= 1 / 3:
            marks["cancel"] = time.perf_counter()
            controller.cancel()

    def on_ended(job: Job) -> None:
        marks["ended"] = time.perf_counter()
        if not controller.cleaning:
            marks["cleaned"] = marks["ended"]
            loop.quit()

    def on_cleanup(running: int) -> None:
        if running == 0 and "ended" in marks:
            marks["cleaned"] = time.perf_counter()
            loop.quit()

    controller.progress.connect(on_progress)
    controller.ended.connect(on_ended)
    controller.cleanup_changed.connect(on_cleanup)
    run = lambda progress, cancel: jobs.pack(bundle, dest, copy=copy, progress=progress, cancel=cancel)  # noqa: E731
    controller.start(Job(JobKind.PACK, "bench", run))
    QTimer.singleShot(300_000, loop.quit)
    loop.exec()
    QCoreApplication.processEvents()
    del app
    leftovers = list(dest.parent.glob(dest.name + ".partial-*"))
    if "cancel" not in marks or "cleaned" not in marks or dest.exists() or leftovers:
        raise SystemExit(f"cancel bench: the pack was not cancelled cleanly ({marks}, leftovers {leftovers})")
    return {"stop_s": marks["ended"] - marks["cancel"], "clean_s": marks["cleaned"] - marks["cancel"]}


def summarize_cancel(label: str, runs: list[dict[str, float]]) -> None:
    stops = [r["stop_s"] for r in runs]
    cleans = [r["clean_s"] for r in runs]
    print(
        f"{label:<28} Cancel -> job reported cancelled, window free: median {statistics.median(stops):6.3f} s "
        f"(max {max(stops):.3f});  Cancel -> partial output gone: median {statistics.median(cleans):6.2f} s "
        f"(max {max(cleans):.2f})"
    )


def summarize(label: str, runs: list[dict[str, float]]) -> None:
    times = [r["populated_s"] for r in runs]
    loads = [r["load_after_show_s"] for r in runs]
    rss = max(r["rss_mib"] for r in runs)
    print(
        f"{label:<28} {int(runs[0]['images']):>6} images  launch->populated median {statistics.median(times):6.2f} s "
        f"(min {min(times):.2f}, max {max(times):.2f})  read+analyse+fill after show "
        f"{statistics.median(loads):5.2f} s  peak RSS {rss:6.1f} MiB"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the bundle here and keep it (default: a temp folder)")
    parser.add_argument("--copy", action="store_true", help="cancel a copying pack instead of a hard-linking one")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="regpack-gui-bench-") as tmp:
        bundle = args.keep or Path(tmp) / "bundle"
        t = time.perf_counter()
        if not (bundle.exists() and any(bundle.iterdir())):
            make_synthetic(bundle, args.images, seed=1, lists_every=25)
        files = [p for p in bundle.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        print(
            f"bundle: {args.images} images, {len(files)} files, {size / 2**20:.1f} MiB "
            f"(generated in {time.perf_counter() - t:.1f} s) at {bundle}"
        )

        t = time.perf_counter()
        parsed = read(bundle)
        t_read = time.perf_counter() - t
        t = time.perf_counter()
        analysis = analyse(parsed)
        t_analyse = time.perf_counter() - t
        print(
            f"core alone (this process): read {t_read:.2f} s, analyse {t_analyse:.2f} s; "
            f"{len(parsed.blobs)} distinct blobs, saving {analysis.saved_percent:.1f}%"
        )

        summarize("sample (Qt start-up cost)", [launch(SAMPLE_DIR) for _ in range(args.runs)])
        summarize(f"synthetic {args.images}", [launch(bundle) for _ in range(args.runs)])
        mode = "copy" if args.copy else "hard links"
        cancels = [cancel_once(bundle, Path(tmp) / f"packed-{i}", copy=args.copy) for i in range(args.runs)]
        summarize_cancel(f"cancel pack ({mode})", cancels)
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS of any window process (getrusage RUSAGE_CHILDREN): {children:.1f} MiB")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
