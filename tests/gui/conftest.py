"""Shared fixtures for the window tests: offscreen Qt, settings in a temp folder, bundles made on the fly."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any Qt import: the tests never need a display

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QSettings

from tests.support import sample as make_sample


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path_factory: pytest.TempPathFactory, qapp: object) -> Iterator[Path]:
    """Point QSettings at a fresh folder so tests never read or write the user's recent bundles."""
    folder = tmp_path_factory.mktemp("settings")
    QCoreApplication.setOrganizationName("regpack-tests")
    QCoreApplication.setApplicationName("regpack-gui-tests")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    yield folder


@pytest.fixture
def sample_bundle(tmp_path: Path) -> Path:
    """A private copy of the shipped sample (tests may corrupt it)."""
    return make_sample.make_sample(tmp_path / "sample")


@pytest.fixture
def synthetic_bundle(tmp_path: Path) -> Path:
    """Forty images with shared bases and two multi-arch lists."""
    return make_sample.make_synthetic(tmp_path / "synthetic", 40, seed=7, lists_every=20)


# The offscreen platform warns that it cannot pass size hints to a window manager it does not have.
_OFFSCREEN_NOISE = r"This plugin does not support propagateSizeHints\(\)"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.qt_log_ignore(_OFFSCREEN_NOISE))


@pytest.fixture
def window(qtbot):  # type: ignore[no-untyped-def]
    from regpack.gui.window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    return win


@pytest.fixture
def open_and_wait(qtbot):  # type: ignore[no-untyped-def]
    """``open_and_wait(window, path)``: open a bundle and wait until every view shows it; returns Loaded."""

    def run(window, path: Path):  # type: ignore[no-untyped-def]
        with qtbot.waitSignal(window.bundle_loaded, timeout=30_000) as blocker:
            assert window.open_bundle(path)
        return blocker.args[0]

    return run
