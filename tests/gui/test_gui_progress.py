"""Progress text and throttling: what the progress bar shows while a job runs."""

from __future__ import annotations

from regpack.gui.sizes import human_size
from regpack.gui.workers import ProgressTracker, Throttle
from regpack.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_tracker_shows_bytes_rate_and_time_left() -> None:
    clock = Clock()
    tracker = ProgressTracker(clock)
    clock.now += 2
    text = tracker.update(Progress(20 * 2**20, 100 * 2**20, 3, 10))
    assert text.fraction == 0.2
    assert text.text.startswith(f"{human_size(20 * 2**20)} of {human_size(100 * 2**20)}")
    assert "3 of 10 files" in text.text
    assert "10.0 MiB/s" in text.text  # 20 MiB in 2 s
    assert "8 seconds left" in text.text  # 80 MiB to go at 10 MiB/s


def test_tracker_rate_follows_recent_speed() -> None:
    clock = Clock()
    tracker = ProgressTracker(clock)
    clock.now += 1
    tracker.update(Progress(50 * 2**20, 200 * 2**20, 1, 4))  # a fast burst (hard links)
    for _ in range(10):  # then slow copying: 1 MiB/s for 10 s
        clock.now += 1
        last = tracker.update(Progress(50 * 2**20 + 2**20 * int(clock.now - 101), 200 * 2**20, 2, 4))
    assert "1.0 MiB/s" in last.text


def test_tracker_without_totals() -> None:
    text = ProgressTracker(Clock()).update(Progress(0, 0, 0, 0))
    assert text.fraction == -1 and text.text == human_size(0)


def test_throttle_lets_about_ten_a_second_through_and_keeps_the_last() -> None:
    clock = Clock()
    throttle = Throttle(0.1, clock)
    passed = []
    for i in range(100):  # 100 events over 1 s
        if throttle.offer(i):
            passed.append(i)
        clock.now += 0.01
    assert 9 <= len(passed) <= 11
    assert throttle.take_pending() == 99 or passed[-1] == 99
    assert throttle.take_pending() is None


EMIT_5000 = """
import sys
import PySide6
from PySide6.QtCore import QCoreApplication, QObject, Signal

class Source(QObject):
    value = Signal(object)

app = QCoreApplication([])
source = Source()
received = []
source.value.connect(received.append)
before = sys.getrefcount(True)
for i in range(5000):  # far more than True's few hundred references at start-up
    source.value.emit(i)
after = sys.getrefcount(True)
print(PySide6.__version__, before, after, len(received))
"""


def test_thousands_of_plain_emits_leave_true_intact() -> None:
    """PySide6 6.12.0 dropped a reference to True on every emit and aborted Python 3.11 after a few hundred.

    The requirements exclude that release; this runs the installed one in a child process, so a broken release
    fails here by name instead of crashing the test session.
    """
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", EMIT_5000], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"the interpreter died emitting signals: {run.stderr[-2000:]}"
    version, before, after, received = run.stdout.split()
    assert int(received) == 5000
    assert int(after) >= int(before), f"PySide6 {version} loses a reference to True on Signal.emit"


def test_a_task_reporting_progress_often_runs_to_the_end(qtbot) -> None:
    from regpack.gui.workers import Task, TaskKeeper

    def job(progress, cancel):
        for i in range(3000):
            progress(Progress(i, 3000, i, 3000))
        return "done"

    task = Task(job, interval=0)  # no throttling: every report becomes a signal
    seen: list[Progress] = []
    task.signals.progress.connect(seen.append)
    keeper = TaskKeeper()
    with (
        qtbot.waitSignal(task.signals.done, timeout=30_000),
        qtbot.waitSignal(task.signals.finished, timeout=30_000) as finished,
    ):
        keeper.start(task)
    assert finished.args == ["done"]
    assert len(seen) == 3000 and seen[-1].done_bytes == 2999
    qtbot.waitUntil(lambda: not keeper.running)  # the keeper lets go of the finished task
