"""One progress model: events at a bounded rate, and the rate and time left the CLI and the window show."""

from __future__ import annotations

from regpack.progress import Meter, Progress, Tracker
from regpack.units import human_size


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_tracker_shows_bytes_rate_and_time_left() -> None:
    clock = Clock()
    tracker = Tracker(clock)
    clock.now += 2
    estimate = tracker.update(Progress(20 * 2**20, 100 * 2**20, 3, 10))
    assert estimate.fraction == 0.2
    assert estimate.rate == 10 * 2**20 and estimate.seconds_left == 8
    text = estimate.text()
    assert text.startswith(f"{human_size(20 * 2**20)} of {human_size(100 * 2**20)}")
    assert "3 of 10 files" in text
    assert "10.0 MiB/s" in text  # 20 MiB in 2 s
    assert "8 seconds left" in text  # 80 MiB to go at 10 MiB/s


def test_tracker_shows_no_rate_over_less_than_half_a_second() -> None:
    # verify reports the blobs hashed while reading in its first event: 110 MiB "done" in microseconds
    clock = Clock()
    tracker = Tracker(clock)
    clock.now += 0.00002
    estimate = tracker.update(Progress(110 * 2**20, 110 * 2**20, 44006, 44006, "verifying"))
    assert estimate.rate == 0 and estimate.seconds_left is None
    assert "/s" not in estimate.text()
    clock.now += 0.5
    assert tracker.update(Progress(110 * 2**20, 120 * 2**20, 44006, 44100)).rate > 0


def test_tracker_rate_follows_recent_speed() -> None:
    clock = Clock()
    tracker = Tracker(clock)
    clock.now += 1
    tracker.update(Progress(50 * 2**20, 200 * 2**20, 1, 4))  # a fast burst (hard links)
    for _ in range(10):  # then slow copying: 1 MiB/s for 10 s
        clock.now += 1
        last = tracker.update(Progress(50 * 2**20 + 2**20 * int(clock.now - 101), 200 * 2**20, 2, 4))
    assert "1.0 MiB/s" in last.text()


def test_tracker_without_totals() -> None:
    estimate = Tracker(Clock()).update(Progress(0, 0, 0, 0))
    assert estimate.fraction == -1 and estimate.text() == human_size(0) and estimate.seconds_left is None


def test_counting_images_only_shows_no_bytes() -> None:
    estimate = Tracker(Clock()).update(Progress(0, 0, 2, 5, "pulling"))
    assert estimate.text("images") == "2 of 5 images"


def test_meter_reports_about_ten_a_second_from_many_calls_and_always_the_end() -> None:
    clock = Clock()
    seen: list[Progress] = []
    meter = Meter(seen.append, 100, 100, "copying", clock=clock)
    for _ in range(100):  # 100 files over 1 s
        meter.add(1)
        clock.now += 0.01
    assert 9 <= len(seen) <= 11
    assert seen[-1].done_files < 100
    meter.finish()
    assert seen[-1] == Progress(100, 100, 100, 100, "copying")
