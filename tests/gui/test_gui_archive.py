"""The window opens an archive as it opens a folder: the same images and numbers as `regpack inspect --json`."""

from __future__ import annotations

from pathlib import Path

from regpack.gui.models import OBJECT_ROLE
from regpack.jobs import pack
from tests.gui.test_gui_window import inspect_json


def test_window_opens_a_zstd_archive(open_and_wait, window, synthetic_bundle: Path, tmp_path: Path) -> None:
    archive = tmp_path / "release.tar.zst"
    pack(synthetic_bundle, archive)
    expected = inspect_json(archive)
    open_and_wait(window, archive)
    shown = sorted(window.proxy.index(r, 0).data(OBJECT_ROLE).image.name for r in range(window.proxy.rowCount()))
    assert shown == sorted(i["name"] for i in expected["images"])
    assert window.bundle is not None and window.bundle.root == archive
