"""The window fits small screens: sized from the screen's available geometry, progress and Cancel visible."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QRect, QSize

import regpack.jobs
from regpack.gui.dialogs import PACK, JobOptions
from regpack.gui.window import initial_size
from regpack.layouts import READING
from tests.support import sample as make_sample


def test_initial_size_follows_the_available_screen() -> None:
    assert initial_size(QRect(0, 0, 2560, 1440)) == QSize(1380, 860)
    small = initial_size(QRect(0, 0, 1280, 690))  # 1280x720 less a 30 px panel
    assert small.width() <= 1280 and small.height() <= 690


@pytest.mark.parametrize("screen", [(1280, 720), (1024, 700)])
def test_on_a_small_screen_the_window_fits_with_many_images(tmp_path: Path, screen: tuple[int, int]) -> None:
    """The real program on an offscreen screen of that size, with 40 images (the chart's most bars)."""
    width, height = screen
    config = tmp_path / "screen.json"
    config.write_text(
        json.dumps({"screens": [{"name": "s", "x": 0, "y": 0, "width": width, "height": height, "dpr": 1}]})
    )
    bundle = make_sample.make_synthetic(tmp_path / "bundle", 40, seed=3, lists_every=0)
    env = dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={config}", XDG_CONFIG_HOME=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-m", "regpack.gui", "--exit-after-load", str(bundle)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["available"] == [width, height]
    assert figures["window_size"][0] <= width and figures["window_size"][1] <= height
    assert figures["minimum_size"][0] <= width and figures["minimum_size"][1] <= height - 40  # title bar


def test_progress_and_cancel_stay_visible_in_a_small_window(
    open_and_wait, qtbot, window, synthetic_bundle: Path, tmp_path: Path, monkeypatch
) -> None:
    open_and_wait(window, synthetic_bundle)
    window.resize(1000, 640)
    assert window.width() == 1000 and window.height() == 640  # the minimum allows it
    parked = threading.Event()
    real_pack = regpack.jobs.pack

    def pack_parked(src, dest, *, progress, cancel, **options):  # type: ignore[no-untyped-def]
        def hook(p):  # type: ignore[no-untyped-def]
            progress(p)
            if p.message != READING:  # the bar's phase, not the read before it
                parked.set()
                cancel.wait(30)

        return real_pack(src, dest, progress=hook, cancel=cancel, **options)

    monkeypatch.setattr(regpack.jobs, "pack", pack_parked)
    with qtbot.waitSignal(window.job_ended, timeout=60_000):
        window.run_job(
            JobOptions(PACK, synthetic_bundle, tmp_path / ("a-rather-long-destination-name-" * 3), False, False)
        )
        qtbot.waitUntil(parked.is_set, timeout=30_000)
        qtbot.wait(200)  # the first progress reaches the panel
        inside = window.rect()
        for widget in (window.progress.bar, window.progress.cancel_button):
            assert widget.isVisible()
            top_left = widget.mapTo(window, QPoint(0, 0))
            assert inside.contains(QRect(top_left, widget.size())), widget
        assert window.progress.cancel_button.width() >= window.progress.cancel_button.minimumSizeHint().width()
        window.progress.cancel_button.click()
