"""Progress of the command line on stderr: a bar on a terminal, a plain line every few seconds in a log, or nothing.

Imported while the command line is parsed: only the standard library's lightest modules at the top.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import TextIO

    from regpack.progress import Estimate, Progress, Tracker

MODES = ("auto", "bar", "plain", "none")
PLAIN_INTERVAL = 5.0  # seconds between plain lines (each phase's start and end are always printed)
INTERVAL_VARIABLE = "REGPACK_PROGRESS_INTERVAL"  # another interval, in seconds (e.g. 60 for long jobs in CI)
BAR_WIDTH = 30


def add_progress_options(parser: argparse.ArgumentParser, quiet_help: str = "same as --progress none") -> None:
    """The "progress" group: --progress and --quiet."""
    g = parser.add_argument_group("progress")
    g.add_argument(
        "--progress",
        choices=MODES,
        default="auto",
        help="on stderr: auto (default) = a bar on a terminal, plain lines otherwise (CI logs); bar; plain = one "
        f"line every {PLAIN_INTERVAL:.0f} s and at the end of each phase ({INTERVAL_VARIABLE} sets the seconds); "
        "none",
    )
    g.add_argument("--quiet", "-q", action="store_true", help=quiet_help)


def mode_of(args: argparse.Namespace) -> str:
    return "none" if args.quiet else str(args.progress)


class Display:
    """Called with every progress event of a job; ``close`` ends its output. This one shows nothing."""

    def __call__(self, p: Progress) -> None:
        pass

    def close(self) -> None:
        pass


class _Shown(Display):
    """Rate and time left per phase: a new phase (verifying after packing) starts its own estimate."""

    def __init__(self, stream: TextIO, unit: str, clock: Callable[[], float]) -> None:
        self.stream = stream
        self.unit = unit
        self.clock = clock
        self.phase: str | None = None
        self.tracker: Tracker | None = None

    def estimate(self, p: Progress) -> Estimate:
        if self.tracker is None or p.message != self.phase:
            from regpack.progress import Tracker

            self.phase, self.tracker = p.message, Tracker(self.clock)
        return self.tracker.update(p)

    def write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def _counted(p: Progress) -> str:
    """Work without a total: a read counts images ("reading · 12,345 images"), anything else shows its name."""
    head = p.message or "working"
    if p.message != "reading" or not p.done_files:  # layouts.READING
        return head
    return f"{head} · {p.done_files:,} image{'s' if p.done_files != 1 else ''}"


def _percent(p: Progress) -> str:
    return f"{p.fraction * 100:5.1f}%" if p.total_bytes or p.total_files else ""


class Bar(_Shown):
    """One line redrawn in place: phase, bar, percentage, bytes, files, rate, time left."""

    def __init__(self, stream: TextIO, unit: str = "files", clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(stream, unit, clock)
        self.shown = 0  # characters of the line drawn last: a shorter line overwrites them with spaces

    def line(self, e: Estimate, columns: int) -> str:
        """The most telling first, as a narrow terminal cuts the line at its right end."""
        from regpack.units import human_duration, human_rate, human_size

        p = e.progress
        head = p.message or "working"
        if not (p.total_bytes or p.total_files):
            return _counted(p)
        parts = [_percent(p)]
        if e.seconds_left is not None:
            parts.append(f"{human_duration(e.seconds_left)} left")
        if p.total_bytes:
            parts.append(f"{human_size(p.done_bytes)}/{human_size(p.total_bytes)}")
        if p.total_files:
            parts.append(f"{p.done_files}/{p.total_files} {self.unit}")
        if e.rate > 0:
            parts.append(human_rate(e.rate))
        rest = " ".join(parts)
        room = max(10, min(BAR_WIDTH, columns - len(head) - len(rest) - 5))
        filled = int(room * p.fraction)
        return f"{head} [{'#' * filled}{'.' * (room - filled)}] {rest}"

    def __call__(self, p: Progress) -> None:
        columns = _columns(self.stream)
        text = self.line(self.estimate(p), columns)[: max(columns - 1, 1)]
        self.write("\r" + text + " " * max(0, self.shown - len(text)))
        self.shown = len(text)

    def close(self) -> None:
        if self.shown:
            self.write("\n")
            self.shown = 0


class Plain(_Shown):
    """A line every ``interval`` seconds, and at the start and end of each phase, for logs.

    A phase without a total (a read, counting images) stays silent for its first ``interval``: a quick read
    adds no lines to a log, a long one says every ``interval`` how far it got, and then how it ended."""

    def __init__(
        self,
        stream: TextIO,
        unit: str = "files",
        interval: float = PLAIN_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(stream, unit, clock)
        self.interval = interval
        self.last_time = float("-inf")
        self.last: Progress | None = None  # the event printed last
        self.pending: Estimate | None = None  # the newest event not printed yet
        self.phase_start = float("-inf")
        self.phase_shown = False  # a line of this phase was printed

    def __call__(self, p: Progress) -> None:
        now = self.clock()
        if p.message != self.phase:
            self._end_phase()  # how the phase before ended
            self.phase_start, self.phase_shown = now, False
            new_phase = True
        else:
            new_phase = False
        e = self.estimate(p)
        if p == self.last:
            return
        if not (p.total_bytes or p.total_files):  # a count: never at its start, never "finished"
            due = now - self.phase_start >= self.interval and now - self.last_time >= self.interval
        else:
            due = new_phase or p.fraction >= 1.0 or now - self.last_time >= self.interval
        if due:
            self._print(e)
            self.last_time = now
        else:
            self.pending = e

    def _end_phase(self) -> None:
        if self.pending is not None:
            p = self.pending.progress
            if self.phase_shown or p.total_bytes or p.total_files:
                self._print(self.pending)
            self.pending = None

    def _print(self, e: Estimate) -> None:
        p = e.progress
        if not (p.total_bytes or p.total_files):
            self.write(f"regpack: {_counted(p)}\n")
        else:
            parts = [_percent(p).strip(), e.text(self.unit)]
            self.write(f"regpack: {' · '.join([p.message or 'working', *filter(None, parts)])}\n")
        self.last, self.pending, self.phase_shown = p, None, True

    def close(self) -> None:
        self._end_phase()


def display(mode: str, stream: TextIO | None = None, unit: str = "files") -> Display:
    """The display for ``--progress MODE`` on ``stream`` (stderr); ``auto`` is a bar on a terminal only."""
    stream = stream or sys.stderr
    if mode == "auto":
        mode = "bar" if _isatty(stream) else "plain"
    if mode == "bar":
        return Bar(stream, unit)
    if mode == "plain":
        return Plain(stream, unit, _interval(stream))
    return Display()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except ValueError:  # closed
        return False


def _columns(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):  # not a terminal: a bar asked for by name goes to a log
        columns = 0
    return columns or _number(os.environ.get("COLUMNS", "")) or 80  # a terminal of unknown size says 0


def _number(text: str) -> int:
    return int(text) if text.isdigit() else 0


def _interval(stream: TextIO) -> float:
    text = os.environ.get(INTERVAL_VARIABLE)
    if text is None:
        return PLAIN_INTERVAL
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # negative or not a number (NaN too)
        from regpack.errors import quoted

        stream.write(
            f"regpack: warning: {INTERVAL_VARIABLE} is not a number of seconds ({quoted(text)}); "
            f"printing progress every {PLAIN_INTERVAL:.0f} s\n"
        )
        return PLAIN_INTERVAL
    return seconds
