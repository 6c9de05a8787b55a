"""The window shows what core computes: same numbers as `regpack inspect --json`, details, filter, state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDropEvent, QGuiApplication

import regpack.gui.window
from regpack.gui.models import OBJECT_ROLE, SORT_ROLE, BlobTreeModel, ImageTableModel
from regpack.gui.sizes import human_size
from regpack.gui.theme import status_colors
from regpack.gui.window import MainWindow

REPO = Path(__file__).resolve().parents[2]


def inspect_json(path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "regpack", "inspect", str(path), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout)


def table_rows(window: MainWindow) -> dict[str, dict[int, object]]:
    """Image name -> {column: (display text, sort value)} as the table shows them."""
    model = window.proxy
    rows = {}
    for r in range(model.rowCount()):
        stats = model.index(r, 0).data(OBJECT_ROLE)
        rows[stats.image.name] = {
            c: (model.index(r, c).data(), model.index(r, c).data(SORT_ROLE)) for c in range(model.columnCount())
        }
    return rows


@pytest.mark.parametrize("bundle_fixture", ["sample_bundle", "synthetic_bundle"])
def test_window_shows_the_same_numbers_as_inspect_json(
    open_and_wait, qtbot, window, request, bundle_fixture: str
) -> None:
    path = request.getfixturevalue(bundle_fixture)
    expected = inspect_json(path)
    open_and_wait(window, path)

    rows = table_rows(window)
    assert len(rows) == len(expected["images"]) == window.image_model.rowCount()
    for image in expected["images"]:
        row = rows[image["name"]]
        assert row[ImageTableModel.REPOSITORY][0] == image["repository"]
        assert row[ImageTableModel.LAYERS] == (str(image["layers"]), image["layers"])
        assert row[ImageTableModel.SIZE] == (human_size(image["total_bytes"]), image["total_bytes"])
        assert row[ImageTableModel.UNIQUE] == (human_size(image["unique_bytes"]), image["unique_bytes"])
        assert row[ImageTableModel.SHARED] == (human_size(image["shared_bytes"]), image["shared_bytes"])
        assert row[ImageTableModel.DIGEST] == (image["digest"][7:19], image["digest"])
        if image["platforms"]:
            assert row[ImageTableModel.KIND][0] == "list (" + ", ".join(image["platforms"]) + ")"
        else:
            assert row[ImageTableModel.KIND][0] == "image"

    summary = window.savings.summary.text()
    assert human_size(expected["dir_bytes"]) in summary
    assert human_size(expected["packed_bytes"]) in summary
    assert f"{human_size(expected['saved_bytes'])} ({expected['saved_percent']:.1f}%)" in summary
    bars = window.savings.bar_values
    assert bars["stored once"][:2] == [expected["packed_bytes"]] * 2
    assert bars["duplicates saved by packing"][:2] == [0, expected["saved_bytes"]]
    largest = sorted(expected["images"], key=lambda i: -i["total_bytes"])[:15]
    assert sorted(bars["unique"]) == sorted(i["unique_bytes"] for i in largest)
    assert f"{len(expected['images'])} images" in window.summary_label.text()


def test_sample_bundle_is_the_default_and_real(open_and_wait, qtbot, window) -> None:
    from regpack.gui.assets import sample_bundle

    loaded = open_and_wait(window, sample_bundle())
    bundle = loaded.bundle
    assert bundle.layout.value == "skopeo-dir" and not bundle.problems
    names = sorted(image.name for image in bundle.images)
    assert names == ["api:2.1", "demo/base:3.19", "demo/tools:1.0", "demo/web:1.0"]
    tools = next(i for i in bundle.images if i.name == "demo/tools:1.0")
    assert tools.is_list and tools.platforms == ("linux/amd64", "linux/arm64/v8")
    assert loaded.analysis.blobs[0].count == 4  # one base layer shared by every image
    assert sum(p.stat().st_size for p in sample_bundle().rglob("*") if p.is_file()) < 100_000


def test_loading_happens_off_the_gui_thread(qtbot, window, synthetic_bundle: Path, monkeypatch) -> None:
    threads: list[threading.Thread] = []
    real_read = regpack.gui.window.read

    def recording_read(path: Path, **options):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread())
        return real_read(path, **options)

    monkeypatch.setattr(regpack.gui.window, "read", recording_read)
    with qtbot.waitSignal(window.bundle_loaded, timeout=30_000):
        assert window.open_bundle(synthetic_bundle)
        # open_bundle returned at once: nothing is shown yet and the window refuses a second job meanwhile
        assert window.image_model.rowCount() == 0
        assert window.busy() and not window.open_action.isEnabled() and not window.pack_action.isEnabled()
        assert "Loading" in window.summary_label.text()
    assert threads and threads[0] is not threading.main_thread()
    assert window.image_model.rowCount() == 40
    assert window.open_action.isEnabled() and window.pack_action.isEnabled() and window.verify_action.isEnabled()
    assert not window.unpack_action.isEnabled()  # a skopeo dir tree is packed, not unpacked


def test_a_folder_that_is_no_bundle_gives_one_error_dialog(qtbot, window, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with qtbot.waitSignal(window.load_failed, timeout=10_000):
        window.open_bundle(empty)
    dialog = window.error_dialog
    assert dialog is not None and dialog.isVisible()
    assert str(empty) in dialog.informativeText()
    assert "no images found" in dialog.informativeText()
    assert window.open_action.isEnabled()


def test_details_show_config_layers_and_manifest(open_and_wait, qtbot, window, sample_bundle: Path) -> None:
    loaded = open_and_wait(window, sample_bundle)
    web = next(i for i in loaded.bundle.images if i.name == "demo/web:1.0")
    assert window.select_image(web)
    details = window.details
    assert "demo/web:1.0" in details.header.text() and str(web.digest) in details.header.text()
    assert details.values["Cmd"].text() == "-f -c /etc/httpd.conf"
    assert details.values["Entrypoint"].text() == "/usr/bin/httpd"
    assert "PORT=8080" in details.values["Env"].text().splitlines()
    assert details.values["Platform"].text() == "linux/amd64"
    assert details.values["Created"].text() == "2024-05-02T09:30:00Z"
    assert details.manifest_text.isReadOnly()
    shown = json.loads(details.manifest_text.toPlainText())
    assert shown == json.loads((sample_bundle / "demo/web:1.0/manifest.json").read_bytes())
    assert [row.digest for row in details.layers.rows()] == [str(d.digest) for d in web.manifest.layers]
    assert details.layers.rows()[0].used_by == 4

    # the shared-layers tree marks this image's layers, both ways of grouping
    marked = {window.blob_model.index(r, 0).data(OBJECT_ROLE).blob.digest for r in window.blob_model.highlighted_rows()}
    assert marked == {d.digest for d in web.manifest.layers}
    window.group_check.setChecked(True)
    assert window.blob_model.mode == BlobTreeModel.BY_IMAGE
    (row,) = window.blob_model.highlighted_rows()
    assert window.tree.isExpanded(window.blob_model.index(row, 0))
    assert window.blob_model.index(row, 0).data() == "demo/web:1.0"


def test_multi_arch_details_switch_platform(open_and_wait, qtbot, window, sample_bundle: Path) -> None:
    loaded = open_and_wait(window, sample_bundle)
    tools = next(i for i in loaded.bundle.images if i.name == "demo/tools:1.0")
    window.select_image(tools)
    box = window.details.platform_box
    assert not box.isHidden() and box.count() == 2
    assert window.details.values["Platform"].text() == "linux/amd64"
    box.setCurrentIndex(1)
    assert window.details.values["Platform"].text() == "linux/arm64/v8"
    assert "platform manifest" in window.details.manifest_text.toPlainText()


def test_filter_and_copy_digest(open_and_wait, qtbot, window, sample_bundle: Path) -> None:
    loaded = open_and_wait(window, sample_bundle)
    qtbot.keyClicks(window.search, "demo/")
    assert window.proxy.rowCount() == 3
    qtbot.keyClicks(window.search, "we")
    assert window.proxy.rowCount() == 1
    assert "1 of 4" in window.images_panel.title_label.text()
    window.table.selectRow(0)
    window.table.setFocus()
    qtbot.keyClick(window.table, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    web = next(i for i in loaded.bundle.images if i.name == "demo/web:1.0")
    assert QGuiApplication.clipboard().text() == str(web.digest)
    assert window.proxy.index(0, ImageTableModel.DIGEST).data(Qt.ItemDataRole.ToolTipRole) == str(web.digest)


def test_read_problems_colour_the_image_red(open_and_wait, qtbot, window, sample_bundle: Path) -> None:
    web = sample_bundle / "demo/web:1.0"
    manifest = json.loads((web / "manifest.json").read_bytes())
    (web / manifest["layers"][1]["digest"][7:]).unlink()  # the web layer did not arrive
    open_and_wait(window, sample_bundle)
    rows = table_rows(window)
    assert set(rows) >= {"demo/web:1.0"}
    model = window.proxy
    colours = {
        model.index(r, 0).data(OBJECT_ROLE).image.name: model.index(r, 0).data(Qt.ItemDataRole.BackgroundRole)
        for r in range(model.rowCount())
    }
    assert colours["demo/web:1.0"].color() == status_colors().error_background
    assert colours["api:2.1"] is None
    assert "problem" in window.problems_label.text()


def test_recent_bundles_and_window_state_are_remembered(
    open_and_wait, qtbot, sample_bundle: Path, isolated_settings: Path
) -> None:
    first = MainWindow()
    qtbot.addWidget(first)
    first.show()
    open_and_wait(first, sample_bundle)
    first.resize(760, 680)  # inside the offscreen screen (800x800), so restoring it needs no clamping
    qtbot.waitUntil(lambda: first.width() == 760)
    first.main_splitter.setSizes([200, 556])
    sizes = first.main_splitter.sizes()
    assert sizes[0] < sizes[1]  # unlike the first-run split, which favours the images table
    first.group_check.setChecked(True)
    first.close()
    assert list(isolated_settings.rglob("*.ini")), "settings must be written to the test folder"
    assert QSettings().value("recent", [], type=list)[0] == str(sample_bundle)

    second = MainWindow()
    qtbot.addWidget(second)
    second.show()
    assert second.recent_bundles()[0] == str(sample_bundle)
    assert second.size() == first.size()
    assert second.main_splitter.sizes() == sizes
    assert second.group_check.isChecked()
    (entry,) = [a for a in second.recent_menu.actions() if a.text() == str(sample_bundle)]
    with qtbot.waitSignal(second.bundle_loaded, timeout=30_000):
        entry.trigger()
    assert second.bundle is not None and second.bundle.root == sample_bundle


def test_dropping_a_folder_opens_it(qtbot, window, sample_bundle: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(sample_bundle))])
    event = QDropEvent(
        QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    with qtbot.waitSignal(window.bundle_loaded, timeout=30_000):
        window.dropEvent(event)
    assert window.bundle is not None and window.bundle.root == sample_bundle


def test_regpack_gui_without_a_path_opens_the_sample(tmp_path: Path) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-m", "regpack.gui", "--exit-after-load"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["images"] == 4 and figures["layers_rows"] == 6
    assert (tmp_path / "regpack" / "regpack-gui.conf").exists()  # state and recent list saved under the org name


def test_regpack_gui_with_a_bad_path_fails_with_the_reason(tmp_path: Path) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path))
    missing = tmp_path / "nowhere"
    out = subprocess.run(
        [sys.executable, "-m", "regpack.gui", "--exit-after-load", str(missing)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert f"{missing}: no such file or folder" in out.stderr
