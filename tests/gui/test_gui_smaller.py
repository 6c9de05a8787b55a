"""The smaller things: title, splitter, Tab order, Help, what to do after an error, merge, error wording."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

import regpack
import regpack.jobs
import regpack.layouts
from regpack.errors import BundleError
from regpack.gui.dialogs import PACK, ErrorDialog, JobOptions
from regpack.gui.window import NEXT_STEP
from tests.support import ocibuild as ob


def test_title_names_the_bundle_once(open_and_wait, window, sample_bundle: Path) -> None:
    open_and_wait(window, sample_bundle)
    assert window.windowTitle() == "sample"  # Qt appends " — regpack" (the display name) itself
    assert (
        QApplication.applicationDisplayName() not in window.windowTitle() or not QApplication.applicationDisplayName()
    )


def test_selection_does_not_move_the_main_splitter(open_and_wait, qtbot, window, tmp_path: Path) -> None:
    long_name = "registry-mirror/" + "a-very-long-path-segment-" * 6 + "service:" + "v1.2.3-" * 8 + "final"
    long_env = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/" + "x" * 150,)
    refs = {
        "short:1": ob.image([ob.layer(ob.text_files("s", 1, 100))], env=("A=1",), cmd=("sh",)),
        long_name: ob.image([ob.layer(ob.text_files("l", 1, 100))], env=long_env, cmd=("/" + "y" * 150,)),
    }
    loaded = open_and_wait(window, ob.write_dir_bundle(tmp_path / "b", refs))
    window.resize(1000, 640)
    window.tabs.setCurrentWidget(window.details)
    window.select_image(next(i for i in loaded.bundle.images if i.name == "short:1"))
    window.main_splitter.setSizes([700, 300])
    qtbot.wait(50)
    before = window.main_splitter.sizes()
    for image in [*loaded.bundle.images, *loaded.bundle.images]:
        window.select_image(image)
        qtbot.wait(20)
        assert window.main_splitter.sizes() == before, image.name


def test_tab_moves_between_filter_table_tree_and_side_panel(open_and_wait, qtbot, window, sample_bundle) -> None:
    open_and_wait(window, sample_bundle)
    window.activateWindow()
    window.table.setFocus()
    order = []
    for _ in range(2):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        order.append(QApplication.focusWidget())
    assert order[0] is window.tree
    assert window.tabs.isAncestorOf(order[1]) or order[1] is window.tabs


def test_help_lists_shortcuts_and_about(window) -> None:
    keys = dict(window.shortcuts())
    for action in (window.open_action, window.pack_action, window.verify_action, window.find_action):
        assert action.shortcut().toString() in keys
    box = window.show_shortcuts()
    assert "Ctrl+P" in box.text() and "Tab" in box.text()
    about = window.show_about()
    assert "Apache-2.0" in about.text() and regpack.__version__ in about.text()


def test_an_empty_window_after_an_error_says_what_to_do(qtbot, window, tmp_path: Path) -> None:
    with qtbot.waitSignal(window.load_failed, timeout=30_000):
        window.open_bundle(tmp_path / "missing")
    assert window.summary_label.text() == NEXT_STEP
    assert "Ctrl+O" in window.savings.summary.text()


def test_errors_name_the_destination_not_the_staging_folder(
    open_and_wait, qtbot, window, sample_bundle: Path, tmp_path: Path, monkeypatch
) -> None:
    dest = tmp_path / "packed"

    def failing_pack(src, dest_, **options):  # type: ignore[no-untyped-def]
        raise BundleError("no space left on the device", f"{dest_}.partial-4242-x1y2/docker/registry/v2/blobs")

    monkeypatch.setattr(regpack.jobs, "pack", failing_pack)
    open_and_wait(window, sample_bundle)
    with qtbot.waitSignal(window.job_ended, timeout=30_000):
        window.run_job(JobOptions(PACK, sample_bundle, dest, False, False))
    text = window.error_dialog.informativeText()
    assert f"{dest}/docker/registry/v2/blobs" in text and ".partial-" not in text


def test_error_dialog_is_wide_enough_for_title_and_path(qtbot) -> None:
    path = "/srv/releases/2026-11/customer-acme/offline-bundle-with-a-long-name/docker/registry/v2/blobs"
    dialog = ErrorDialog("Pack failed", f"{path}: permission denied")
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.width() >= dialog.fontMetrics().horizontalAdvance(f"{path}: permission denied")


def test_pack_dialog_offers_merge_into_existing_storage(
    open_and_wait, qtbot, window, sample_bundle: Path, tmp_path: Path
) -> None:
    storage = tmp_path / "storage"
    regpack.jobs.pack(sample_bundle, storage)
    open_and_wait(window, sample_bundle)
    window.pack_action.trigger()
    dialog = window.job_dialog
    dialog.dest_edit.setText(str(storage))
    assert not dialog.ok_button.isEnabled() and "merge into it" in dialog.warning.text()
    dialog.merge_check.setChecked(True)
    assert dialog.ok_button.isEnabled()
    assert dialog.options().merge
    with qtbot.waitSignal(window.job_ended, timeout=60_000):
        qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert window.error_dialog is None
    assert "skipped" in window.result_dialog.summary.text() or "Packed" in window.result_dialog.summary.text()
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "x").write_text("x")
    window.pack_action.trigger()
    again = window.job_dialog
    again.merge_check.setChecked(True)
    again.dest_edit.setText(str(plain))
    assert not again.ok_button.isEnabled() and "not a registry storage" in again.warning.text()
    again.reject()


def _gui(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """regpack-gui with no display at all: no DISPLAY, no WAYLAND_DISPLAY, no Qt platform chosen."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    return subprocess.run(
        [sys.executable, "-m", "regpack.gui", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_help_and_version_need_no_display(tmp_path: Path) -> None:
    help_run = _gui("--help", tmp_path=tmp_path)
    assert help_run.returncode == 0 and "usage: regpack-gui" in help_run.stdout and "--theme" in help_run.stdout
    version = _gui("--version", tmp_path=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"regpack-gui {regpack.__version__}"


def test_unknown_options_are_a_usage_error_before_any_window(tmp_path: Path) -> None:
    run = _gui("--verbsoe", str(tmp_path), tmp_path=tmp_path)
    assert run.returncode == 2
    assert "unrecognized arguments: --verbsoe" in run.stderr and "usage: regpack-gui" in run.stderr


def test_qt_options_still_reach_qt() -> None:
    from regpack.gui.app import split_qt_options

    qt, ours = split_qt_options(["-platform", "offscreen", "--theme", "dark", "-qwindowgeometry=1x1", "b"])
    assert qt == ["-platform", "offscreen", "-qwindowgeometry=1x1"] and ours == ["--theme", "dark", "b"]


def test_pack_dialog_makes_a_patch_with_only_what_the_base_lacks(
    open_and_wait, qtbot, window, sample_bundle: Path, tmp_path: Path
) -> None:
    base = tmp_path / "site"
    regpack.jobs.pack(sample_bundle, base)
    open_and_wait(window, sample_bundle)
    window.pack_action.trigger()
    dialog = window.job_dialog
    dialog.dest_edit.setText(str(tmp_path / "patch"))
    dialog.base_check.setChecked(True)
    assert not dialog.ok_button.isEnabled() and "Choose the base" in dialog.warning.text()
    dialog.base_edit.setText(str(tmp_path / "nowhere"))
    assert not dialog.ok_button.isEnabled() and "does not exist" in dialog.warning.text()
    dialog.base_edit.setText(str(base))
    assert dialog.ok_button.isEnabled() and dialog.options().base == base
    with qtbot.waitSignal(window.job_ended, timeout=60_000):
        qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert window.error_dialog is None
    assert "left to the base" in window.result_dialog.summary.text()
    # the base holds every config and layer: the patch carries the manifests only, and says what it needs
    patch = regpack.layouts.read(tmp_path / "patch")
    assert patch.is_patch and patch.from_base
    assert all(b.role.value == "manifest" for b in patch.blobs.values() if b.file is not None)
