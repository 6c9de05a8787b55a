"""How long the window takes to show a big bundle, and how much memory it needs.

Generates synthetic skopeo dir bundles (default 2,000 images: small random blobs, a few base layers shared by
many images, runtime layers shared by some, one layer of its own per image, every 25th image a two-platform
list), then launches ``python -m regpack.gui --exit-after-load`` on each (offscreen), one process per run, and
reports:

- launch->populated: from starting the process to the images table showing every image of the bundle with the
  window answering input again (the window prints a line when a zero-timer posted after the table was filled
  runs: the event loop is free, so a click or a key is handled). Sizes, the layers tree and the chart may
  still be counting at that moment ("…" in the table);
- launch->loaded: until every view shows the bundle (numbers, layers tree, chart, details);
- the same two counted from the window's first show, as the window measures them ("after show");
- the CPU seconds that process used until each of those moments (all its threads): on a busy machine the
  wall times stretch with the load, the CPU time far less, and on an idle one the two are close (the read
  and the window's work hold one interpreter lock, so they barely overlap);
- peak RSS of that window process: its VmHWM, the high-water mark of its own address space since exec. (The
  rusage figure would not do: Linux carries the launching process's peak across fork and exec.)

The shipped 4-image sample is timed the same way, to tell Qt's start-up cost from the cost of the bundle, and
core alone (read + analyse, no Qt) is timed in a process of its own per size.

Then it packs the first bundle through the window's job controller (offscreen, in this process, as the Pack
button does) and presses Cancel once a third of the bytes are done: it reports the cancel latency (Cancel
pressed -> the job reported cancelled and the window free again) and the time until the partial output is
gone from disk (removed in the background). It also opens the bundle in a window in this process and presses
Cancel at the first "reading" progress: Cancel -> window free, and Cancel -> the reading thread has stopped; and
again with Cancel pressed a third of core's analyse time after "analysing" (mid-analysis): Cancel
-> window free, Cancel -> the analysing thread has stopped (core alone reports the same for analyse() itself).

    python -m bench.gui_load [--images 2000 [10000 ...]] [--runs 3] [--keep DIR] [--copy] [--no-jobs]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.sample import SAMPLE_DIR, make_synthetic

REPO = Path(__file__).resolve().parents[1]

CORE_ALONE = """
import json, resource, sys, threading, time
from pathlib import Path
from regpack.analysis import analyse
from regpack.errors import Cancelled
from regpack.layouts import read
t = time.perf_counter(); bundle = read(Path(sys.argv[1])); t_read = time.perf_counter() - t
t = time.perf_counter(); analysis = analyse(bundle); t_analyse = time.perf_counter() - t
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
# Cancel set from another thread half-way through a second analysis: seconds until analyse() raised.
cancel, pressed = threading.Event(), []
timer = threading.Timer(t_analyse / 2, lambda: (pressed.append(time.perf_counter()), cancel.set()))
timer.start()
try:
    analyse(bundle, cancel=cancel)
    stop = float("nan")  # finished before the cancel
except Cancelled:
    stop = time.perf_counter() - pressed[0]
print(json.dumps({"read_s": t_read, "analyse_s": t_analyse, "blobs": len(bundle.blobs), "rss_kib": hwm,
                  "saved_percent": analysis.saved_percent, "cancel_analyse_s": stop}))
"""


def core_alone(path: Path) -> dict[str, float]:
    """Read and analyse ``path`` in a fresh process (gc paused during the read, as the command line does)."""
    out = subprocess.run(
        [sys.executable, "-c", CORE_ALONE, str(path)], cwd=REPO, capture_output=True, text=True, check=True
    )
    figures: dict[str, float] = json.loads(out.stdout)
    return figures


def launch(path: Path) -> dict[str, float]:
    """One window process: seconds from exec to populated and to loaded, and the process's peak RSS."""
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
    lines: dict[str, dict[str, float]] = {}
    marks: dict[str, float] = {}
    for line in proc.stdout:
        figures = json.loads(line)
        marks[figures["event"]] = time.perf_counter() - started
        lines[figures["event"]] = figures
        if figures["event"] == "loaded":
            break
    proc.wait(timeout=600)
    if proc.returncode != 0 or set(lines) != {"populated", "loaded"}:
        raise SystemExit(f"window exited with {proc.returncode} before showing {path}")
    populated, loaded = lines["populated"], lines["loaded"]
    if populated["images"] != loaded["images"]:
        raise SystemExit(f"the table had {populated['images']} rows when populated, {loaded['images']} in the end")
    return {
        "populated_s": marks["populated"],
        "loaded_s": marks["loaded"],
        "populated_after_show_s": populated["populated_seconds"],
        "loaded_after_show_s": loaded["load_seconds"],
        "rss_mib": loaded["vm_hwm_kib"] / 1024,
        "images": loaded["images"],
        "populated_cpu_s": populated["cpu_seconds"],
        "loaded_cpu_s": loaded["cpu_seconds"],
    }


def cancel_pack(bundle: Path, dest: Path, *, copy: bool) -> dict[str, float]:
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


def _thread_watch(window: Any, marks: dict[str, float], loop: Any) -> Any:
    """A timer (started by ``_press_cancel``) that notes when the window's worker thread has stopped, and ends
    ``loop`` then."""
    from PySide6.QtCore import QTimer

    def poll_thread() -> None:
        if not window.jobs.detached:
            marks["stopped"] = time.perf_counter()
            loop.quit()

    poll = QTimer()
    poll.timeout.connect(poll_thread)
    return poll


def _press_cancel(window: Any, marks: dict[str, float], poll: Any, every_ms: int) -> None:
    """Press the window's Cancel: when, and when the window was free again; then watch the thread stop."""
    marks["cancel"] = time.perf_counter()
    window.progress.cancel_button.click()
    marks["free"] = time.perf_counter() if not window.busy() else float("nan")
    poll.start(every_ms)


def cancel_open(bundle: Path) -> dict[str, float]:
    """Open ``bundle`` in a window, press Cancel at the first "reading" progress: seconds until the window is
    free again, and until the reading thread has stopped (the read stops between two images)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from regpack.gui.jobs import Job, JobKind
    from regpack.gui.window import MainWindow

    app = QApplication.instance() or QApplication([])
    window = MainWindow()
    window.show()
    marks: dict[str, float] = {}
    loop = QEventLoop()

    poll = _thread_watch(window, marks, loop)

    def on_progress(job: Job, estimate: object) -> None:
        if job.kind is JobKind.LOAD and "cancel" not in marks:
            _press_cancel(window, marks, poll, 5)

    window.jobs.progress.connect(on_progress)
    window.bundle_loaded.connect(lambda loaded: loop.quit())
    window.open_bundle(bundle)
    QTimer.singleShot(300_000, loop.quit)
    loop.exec()
    poll.stop()
    window.close()
    del app
    if "stopped" not in marks or window.bundle is not None:
        raise SystemExit(f"cancel bench: the open was not cancelled ({marks})")
    return {"free_s": marks["free"] - marks["cancel"], "stopped_s": marks["stopped"] - marks["cancel"]}


def cancel_analysis(bundle: Path, delay: float) -> dict[str, float]:
    """Open ``bundle`` in a window, press Cancel ``delay`` seconds after the analysis began ("analysing"):
    seconds until the window is free again, and until the analysing thread has stopped. NaN for the latter when
    the analysis had ended before the cancel reached it."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    import regpack.gui.window
    from regpack.errors import Cancelled
    from regpack.gui.jobs import Job, JobKind
    from regpack.gui.window import ANALYSING, MainWindow
    from regpack.progress import Estimate

    app = QApplication.instance() or QApplication([])
    real = regpack.gui.window.analyse
    outcome: list[object] = []

    def analyse_noting(bundle: object, *, cancel: object) -> object:  # what ended the analysis
        try:
            outcome.append(real(bundle, cancel=cancel))  # type: ignore[arg-type]
        except Cancelled as e:
            outcome.append(e)
            raise
        return outcome[-1]

    regpack.gui.window.analyse = analyse_noting  # type: ignore[assignment]
    window = MainWindow()
    window.show()
    marks: dict[str, float] = {}
    loop = QEventLoop()

    poll = _thread_watch(window, marks, loop)

    def press() -> None:
        if "loaded" not in marks:
            _press_cancel(window, marks, poll, 2)

    def on_progress(job: Job, estimate: Estimate) -> None:
        if job.kind is JobKind.LOAD and estimate.progress.message == ANALYSING and "at" not in marks:
            marks["at"] = time.perf_counter()
            QTimer.singleShot(int(delay * 1000), press)

    window.jobs.progress.connect(on_progress)

    def on_loaded(loaded: object) -> None:  # done before Cancel was pressed
        marks["loaded"] = time.perf_counter()
        loop.quit()

    window.bundle_loaded.connect(on_loaded)
    try:
        window.open_bundle(bundle)
        QTimer.singleShot(600_000, loop.quit)
        loop.exec()
    finally:
        regpack.gui.window.analyse = real
        poll.stop()
        window.close()
    del app
    if "cancel" not in marks:  # the analysis was done before Cancel was pressed: nothing to measure
        return {"free_s": float("nan"), "stopped_s": float("nan")}
    if "stopped" not in marks:
        raise SystemExit(f"cancel bench: the analysis was not cancelled ({marks})")
    mid = bool(outcome) and isinstance(outcome[0], Cancelled)
    return {
        "free_s": marks["free"] - marks["cancel"],
        "stopped_s": marks["stopped"] - marks["cancel"] if mid else float("nan"),
    }


def summarize(label: str, runs: list[dict[str, float]]) -> None:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    populated = [r["populated_s"] for r in runs]
    print(
        f"{label:<24} {int(runs[0]['images']):>6} images  launch->populated {med('populated_s'):6.2f} s "
        f"(min {min(populated):.2f}, max {max(populated):.2f})  launch->loaded {med('loaded_s'):6.2f} s  "
        f"after show: populated {med('populated_after_show_s'):5.2f} s, loaded {med('loaded_after_show_s'):5.2f} s  "
        f"peak RSS {max(r['rss_mib'] for r in runs):6.1f} MiB"
    )
    print(
        f"{'':<24} CPU seconds of that process (all threads; on an idle machine close to the wall time): "
        f"to populated {med('populated_cpu_s'):5.2f}, to loaded {med('loaded_cpu_s'):5.2f}"
    )


def summarize_cancel(label: str, runs: list[dict[str, float]], first: str, second: str, words: tuple[str, str]) -> None:
    def text(values: list[float]) -> str:
        return f"median {statistics.median(values):6.3f} s (max {max(values):.3f})" if values else "-"

    a = [r[first] for r in runs if r[first] == r[first]]  # NaN: the work had ended before the cancel
    b = [r[second] for r in runs if r[second] == r[second]]
    first_text, second_text = text(a), text(b)
    left = f" ({len(runs) - len(b)} of {len(runs)} runs ended before the cancel)" if len(b) < len(runs) else ""
    print(f"{label:<28} {words[0]}: {first_text};  {words[1]}: {second_text}{left}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, nargs="+", default=[2000], help="bundle sizes (default 2000)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the bundles here (DIR/N) and keep them (default: temp)")
    parser.add_argument("--copy", action="store_true", help="cancel a copying pack instead of a hard-linking one")
    parser.add_argument("--no-jobs", action="store_true", help="only the window launches, no cancel figures")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="regpack-gui-bench-") as tmp:
        where = args.keep or Path(tmp)
        bundles = {}
        for count in args.images:
            bundle = bundles[count] = where / str(count)
            t = time.perf_counter()
            if not (bundle.exists() and any(bundle.iterdir())):
                make_synthetic(bundle, count, seed=1, lists_every=25)
            files = [p for p in bundle.rglob("*") if p.is_file()]
            size = sum(p.stat().st_size for p in files)
            print(
                f"bundle: {count} images, {len(files)} files, {size / 2**20:.1f} MiB "
                f"(ready in {time.perf_counter() - t:.1f} s) at {bundle}"
            )
        load = os.getloadavg()
        analyse_s: dict[int, float] = {}
        for count, bundle in bundles.items():
            core = core_alone(bundle)
            analyse_s[count] = core["analyse_s"]
            print(
                f"core alone, {count} images (own process): read {core['read_s']:.2f} s, analyse "
                f"{core['analyse_s']:.2f} s (cancelled half-way: stopped {core['cancel_analyse_s'] * 1000:.1f} ms "
                f"after), peak RSS {core['rss_kib'] / 1024:.1f} MiB; {int(core['blobs'])} distinct blobs, saving "
                f"{core['saved_percent']:.1f}%"
            )
        summarize("sample (Qt start-up)", [launch(SAMPLE_DIR) for _ in range(args.runs)])
        for count, bundle in bundles.items():
            summarize(f"synthetic {count}", [launch(bundle) for _ in range(args.runs)])
        if not args.no_jobs:
            first = next(iter(bundles.values()))
            opens = [cancel_open(first) for _ in range(args.runs)]
            words = ("window free", "read stopped")
            summarize_cancel("cancel open (at 1st image)", opens, "free_s", "stopped_s", words)
            delay = analyse_s[next(iter(bundles))] / 3
            analysing = [cancel_analysis(first, delay) for _ in range(args.runs)]
            words = ("window free", "analysis stopped")
            summarize_cancel(f"cancel analysis (+{delay:.2f} s)", analysing, "free_s", "stopped_s", words)
            mode = "copy" if args.copy else "hard links"
            cancels = [cancel_pack(first, Path(tmp) / f"packed-{i}", copy=args.copy) for i in range(args.runs)]
            summarize_cancel(
                f"cancel pack ({mode})", cancels, "stop_s", "clean_s", ("job cancelled, window free", "output gone")
            )
    print(f"load average at start {load[0]:.2f}, at end {os.getloadavg()[0]:.2f}")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
