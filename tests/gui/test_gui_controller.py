"""The job controller: one job at a time, outcomes reported once, cancel, the pre-check, the exception hook."""

from __future__ import annotations

import os
import shutil
import threading
from collections import namedtuple
from pathlib import Path

import pytest

from regpack.errors import Cancelled
from regpack.gui.jobs import Job, JobController, JobKind, needed_bytes, prepare
from regpack.progress import Progress


def test_one_job_at_a_time_and_the_result_reaches_its_handler(qtbot) -> None:
    controller = JobController()
    release = threading.Event()
    got: list[object] = []

    def run(progress, cancel):  # type: ignore[no-untyped-def]
        progress(Progress(5, 10, 1, 2, "packing"))
        release.wait(10)
        return 42

    job = Job(JobKind.PACK, "Packing", run, on_result=got.append)
    ended: list[Job] = []
    controller.ended.connect(ended.append)
    with qtbot.waitSignal(controller.finished, timeout=10_000) as finished:
        assert controller.start(job)
        assert controller.busy and controller.kind is JobKind.PACK
        assert not controller.start(Job(JobKind.VERIFY, "Verifying", run))  # refused while one runs
        release.set()
    assert finished.args == [job, 42]
    assert got == [42] and ended == [job]
    assert not controller.busy  # free again when handlers run: they may start the next job


def test_cancel_reports_cancelled_not_failed(qtbot) -> None:
    controller = JobController()
    started = threading.Event()

    def run(progress, cancel):  # type: ignore[no-untyped-def]
        started.set()
        cancel.wait(10)
        raise Cancelled()

    failed: list[object] = []
    controller.failed.connect(lambda job, exc: failed.append(exc))
    with qtbot.waitSignal(controller.cancelled, timeout=10_000):
        controller.start(Job(JobKind.UNPACK, "Unpacking", run))
        assert started.wait(10)
        assert controller.cancel()
    assert not failed and not controller.busy


def test_a_job_that_cannot_be_cancelled_ignores_cancel(qtbot) -> None:
    controller = JobController()
    with qtbot.waitSignal(controller.ended, timeout=10_000):
        controller.start(Job(JobKind.LOAD, "Reading", lambda progress, cancel: None, cancellable=False))
        assert not controller.cancel()


def test_failure_carries_the_exception(qtbot) -> None:
    controller = JobController()

    def run(progress, cancel):  # type: ignore[no-untyped-def]
        raise OSError(28, "No space left on device", "/dest/x")

    with qtbot.waitSignal(controller.failed, timeout=10_000) as failed:
        controller.start(Job(JobKind.PACK, "Packing", run))
    assert isinstance(failed.args[1], OSError)


def test_prepare_checks_writability_and_free_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert prepare(tmp_path / "new" / "packed", 1024) == ""
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert "not a folder" in prepare(a_file)
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10 << 30, 9 << 30, 1 << 30))
    message = prepare(tmp_path / "packed", 3 << 30)
    assert str(tmp_path / "packed") in message and "3.0 GiB needed" in message and "1.0 GiB free" in message
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert "permission denied" in prepare(locked / "packed")


def test_hard_links_on_one_file_system_need_no_space(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    assert needed_bytes(source, tmp_path / "dest", 5000, copy=False) == 0
    assert needed_bytes(source, tmp_path / "dest", 5000, copy=True) == 5000


def test_unexpected_exception_reaches_the_error_dialog(qtbot, window) -> None:
    import sys

    from regpack.gui.app import ExceptionReporter

    reporter = ExceptionReporter(window)
    saved = sys.excepthook, threading.excepthook
    try:
        reporter.install()
        assert sys.excepthook == reporter.hook
        try:
            raise ValueError("a bug in a slot")
        except ValueError as e:
            with qtbot.waitSignal(reporter.raised, timeout=5_000):
                sys.excepthook(type(e), e, e.__traceback__)
        dialog = window.error_dialog
        assert dialog is not None and dialog.isVisible()
        assert dialog.text() == "Unexpected error"
        assert "ValueError: a bug in a slot" in dialog.informativeText()
        assert "Traceback" in dialog.detailedText()

        # from a worker thread too: queued to the GUI thread
        window.error_dialog = None

        def fail() -> None:
            raise RuntimeError("a bug in a thread")

        with qtbot.waitSignal(reporter.raised, timeout=5_000):
            thread = threading.Thread(target=fail)
            thread.start()
            thread.join()
        assert "a bug in a thread" in window.error_dialog.informativeText()
    finally:
        sys.excepthook, threading.excepthook = saved


def test_pack_dialog_stays_open_with_the_reason_when_space_is_short(
    open_and_wait, qtbot, window, sample_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtCore import Qt

    open_and_wait(window, sample_bundle)
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(1 << 20, 1 << 20, 100))
    window.pack_action.trigger()
    dialog = window.job_dialog
    dest = tmp_path / "packed"
    dialog.dest_edit.setText(str(dest))
    dialog.copy_radio.setChecked(True)
    dialog.verify_check.setChecked(True)
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert dialog.isVisible() and not window.busy()
    assert "needed" in dialog.warning.text() and str(dest) in dialog.warning.text()
    assert dialog.copy_radio.isChecked() and dialog.dest_edit.text() == str(dest)  # the choices stay
    dialog.hardlink_radio.setChecked(True)  # hard links on one file system need no space: it starts
    with qtbot.waitSignal(window.job_ended, timeout=60_000):
        qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert dest.is_dir() and window.error_dialog is None

    # after a failed job the dialog comes back with the same choices
    window.job_options = window.job_options.__class__(window.job_options.kind, sample_bundle, dest, True, True)
    window.pack_action.trigger()
    again = window.job_dialog
    assert again is not dialog and again.dest_edit.text() == str(dest)
    assert again.copy_radio.isChecked() and again.verify_check.isChecked()
    again.reject()
