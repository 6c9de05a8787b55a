"""Progress on stderr, driven by a fake clock: when plain lines appear, what the bar draws over its last line."""

from __future__ import annotations

import io

import pytest

from regpack.console import Bar, Display, Plain, display
from regpack.progress import Progress

MiB = 1 << 20


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def screen(written: str) -> str:
    """What a terminal shows on the last line after ``written``: each carriage return writes over the line."""
    line: list[str] = []
    for chunk in written.split("\n")[-1].split("\r"):
        line[: len(chunk)] = chunk
    return "".join(line)


def test_plain_prints_a_line_every_interval_and_the_end() -> None:
    clock, out = Clock(), io.StringIO()
    plain = Plain(out, interval=5.0, clock=clock)
    for second in range(13):  # 13 events, one a second, the last one complete
        clock.now = 100.0 + second
        done = second * 10 * MiB // 12
        plain(Progress(done, 10 * MiB, second, 12, "packing"))
    plain.close()
    lines = out.getvalue().splitlines()
    # the start, after 5 and 10 seconds, and the end: not one line per event
    assert [line.split(" · ")[1] for line in lines] == ["0.0%", "41.7%", "83.3%", "100.0%"], lines
    assert all(line.startswith("regpack: packing · ") for line in lines)
    assert "5 of 12 files" in lines[1] and "KiB/s" in lines[1]
    assert lines[1].endswith("seconds left"), lines[1]  # 7 of 12 seconds' worth of bytes to go
    assert lines[-1].startswith("regpack: packing · 100.0% · 10.0 MiB of 10.0 MiB · 12 of 12 files")
    assert "left" not in lines[-1]


def test_plain_ends_each_phase_and_prints_what_was_pending_at_close() -> None:
    clock, out = Clock(), io.StringIO()
    plain = Plain(out, interval=5.0, clock=clock)
    plain(Progress(0, 100, 0, 2, "packing"))
    clock.now += 1
    plain(Progress(50, 100, 1, 2, "packing"))  # within the interval: held back
    clock.now += 1
    plain(Progress(0, 40, 0, 1, "verifying"))  # a new phase: how packing stood, then the new phase
    clock.now += 1
    plain(Progress(20, 40, 0, 1, "verifying"))
    assert len(out.getvalue().splitlines()) == 3
    plain.close()  # a job that stops (fails, is cancelled) still shows where it was
    lines = out.getvalue().splitlines()
    assert [line.split(" · ")[:2] for line in lines] == [
        ["regpack: packing", "0.0%"],
        ["regpack: packing", "50.0%"],
        ["regpack: verifying", "0.0%"],
        ["regpack: verifying", "50.0%"],
    ]


def test_plain_prints_a_repeated_final_event_once() -> None:
    out = io.StringIO()
    plain = Plain(out, clock=Clock())
    for _ in range(3):  # the last add and the meter's finish report the same state
        plain(Progress(10, 10, 1, 1, "verifying"))
    plain.close()
    assert len(out.getvalue().splitlines()) == 1


def test_bar_shows_time_left_and_a_shorter_line_leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    clock, out = Clock(), io.StringIO()
    bar = Bar(out, clock=clock)
    bar(Progress(0, 1000 * MiB, 0, 90, "packing"))
    clock.now += 2
    bar(Progress(200 * MiB, 1000 * MiB, 10, 90, "packing"))
    first = screen(out.getvalue())
    assert first.startswith("packing [######") and "20.0%" in first
    assert "8 seconds left" in first and "100.0 MiB/s" in first, first
    clock.now += 1
    bar(Progress(1000 * MiB, 1000 * MiB, 90, 90, "packing"))  # done: no time left, a shorter line; rate over 3 s
    second = screen(out.getvalue())
    assert second.rstrip() == "packing [" + "#" * 30 + "] 100.0% 1000.0 MiB/1000.0 MiB 90/90 files 333.3 MiB/s"
    assert len(second) == len(first)  # padded over the longer line before it
    bar.close()
    assert out.getvalue().endswith("\n")


def test_bar_fits_a_narrow_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    clock, out = Clock(), io.StringIO()
    bar = Bar(out, unit="images", clock=clock)
    bar(Progress(0, 10 * MiB, 0, 4, "pushing"))
    clock.now += 1
    bar(Progress(MiB, 10 * MiB, 1, 4, "pushing"))
    line = screen(out.getvalue())
    assert len(line) <= 59 and "\n" not in out.getvalue()
    assert line.startswith("pushing [#.........]  10.0% 9 seconds left")  # the bar shrinks, time left stays


def test_a_read_counts_images_in_lines_and_in_the_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    """A read has no total (layouts.read counts images as it goes): in a log, a long read says every interval
    how far it got and how it ended; a quick one says nothing. The bar shows the count."""
    clock, out = Clock(), io.StringIO()
    plain = Plain(out, interval=5.0, clock=clock)
    for n in range(1, 12_001):
        if n % 1000 == 0:
            clock.now += 1  # 12,000 images in 12 seconds, reported on every image
        plain(Progress(0, 0, n, 0, "reading"))
    plain(Progress(0, 8 * MiB, 0, 100, "verifying"))
    plain.close()
    assert out.getvalue().splitlines() == [
        "regpack: reading · 5,000 images",  # after 5 seconds, not at the start
        "regpack: reading · 10,000 images",
        "regpack: reading · 12,000 images",  # how the read ended
        "regpack: verifying · 0.0% · 0 Bytes of 8.0 MiB · 0 of 100 files",
    ]
    out = io.StringIO()
    plain = Plain(out, interval=5.0, clock=clock)
    for n in range(1, 2001):
        plain(Progress(0, 0, n, 0, "reading"))  # quick
    plain.close()  # a failed job's read: no line either
    assert out.getvalue() == ""
    monkeypatch.setenv("COLUMNS", "80")
    out = io.StringIO()
    bar = Bar(out, clock=clock)
    bar(Progress(0, 0, 12_345, 0, "reading"))
    assert screen(out.getvalue()).rstrip() == "reading · 12,345 images"
    bar(Progress(0, 0, 0, 0, "preparing"))  # anything else without a total: its name
    assert screen(out.getvalue()).rstrip() == "preparing"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_is_a_bar_on_a_terminal_and_plain_lines_otherwise() -> None:
    assert isinstance(display("auto", Terminal()), Bar)
    assert isinstance(display("auto", io.StringIO()), Plain)
    assert isinstance(display("bar", io.StringIO()), Bar)
    assert isinstance(display("plain", Terminal()), Plain)
    out = Terminal()
    silent = display("none", out)
    assert type(silent) is Display
    silent(Progress(1, 2, 1, 2, "packing"))
    silent.close()
    assert out.getvalue() == ""


def test_the_plain_interval_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGPACK_PROGRESS_INTERVAL", "0.5")
    shown = display("plain", io.StringIO())
    assert isinstance(shown, Plain) and shown.interval == 0.5
    monkeypatch.setenv("REGPACK_PROGRESS_INTERVAL", "soon")
    err = io.StringIO()
    shown = display("plain", err)
    assert isinstance(shown, Plain) and shown.interval == 5.0
    assert err.getvalue() == (
        'regpack: warning: REGPACK_PROGRESS_INTERVAL is not a number of seconds ("soon"); printing progress every 5 s\n'
    )
