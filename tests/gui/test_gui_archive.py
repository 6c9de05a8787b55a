"""Archives in the window: the Pack dialog writes .tar / .tar.zst (whole or split) through the job controller,
File > Open archive and drops open them, Verify and Unpack work on them, and the status bar shows the
archive's size and its sidecar sha256."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent

import regpack.jobs
from regpack.gui.archive_info import looks_like_archive
from regpack.gui.dialogs import FOLDER, PACK, TAR, TAR_ZST, UNPACK, JobOptions, with_output
from regpack.gui.models import OBJECT_ROLE
from regpack.gui.window import MainWindow
from regpack.jobs import pack
from regpack.verify import verify
from tests.gui.test_gui_window import inspect_json

SAMPLE_IMAGES = ["api:2.1", "demo/base:3.19", "demo/tools:1.0", "demo/web:1.0"]


def test_window_opens_a_zstd_archive(open_and_wait, window, synthetic_bundle: Path, tmp_path: Path) -> None:
    archive = tmp_path / "release.tar.zst"
    pack(synthetic_bundle, archive)
    expected = inspect_json(archive)
    open_and_wait(window, archive)
    shown = sorted(window.proxy.index(r, 0).data(OBJECT_ROLE).image.name for r in range(window.proxy.rowCount()))
    assert shown == sorted(i["name"] for i in expected["images"])
    assert window.bundle is not None and window.bundle.root == archive


def test_window_opens_a_gzip_archive_and_verifies_it(
    open_and_wait, window, qtbot, sample_bundle: Path, tmp_path: Path
) -> None:
    pack(sample_bundle, tmp_path / "storage")
    archive = tmp_path / "release.tgz"
    subprocess.run(["tar", "-czf", archive, "-C", tmp_path / "storage", "."], check=True)
    open_and_wait(window, archive)
    shown = sorted(window.proxy.index(r, 0).data(OBJECT_ROLE).image.name for r in range(window.proxy.rowCount()))
    assert shown == SAMPLE_IMAGES
    assert window.bundle is not None and window.bundle.root == archive
    with qtbot.waitSignal(window.job_ended, timeout=60_000):
        window.verify_action.trigger()
    assert window.verify_view.report is not None and window.verify_view.report.ok


def fill_pack_dialog(window: MainWindow, output: str, dest: Path, split: str = "") -> None:
    window.pack_action.trigger()
    dialog = window.job_dialog
    assert dialog is not None and dialog.isVisible()
    dialog.output_radios[output].click()
    dialog.dest_edit.setText(str(dest))
    dialog.split_edit.setText(split)


def sha256sum_check(sidecar: Path) -> None:
    out = subprocess.run(["sha256sum", "-c", sidecar.name], cwd=sidecar.parent, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_pack_dialog_offers_folder_and_archives_and_renames_the_destination(
    open_and_wait, window, sample_bundle: Path, tmp_path: Path
) -> None:
    open_and_wait(window, sample_bundle)
    window.pack_action.trigger()
    dialog = window.job_dialog
    assert [r.text() for r in dialog.output_radios.values()] == [
        "Folder",
        "Archive (.tar)",
        "Compressed archive (.tar.zst)",
    ]
    assert dialog.output() == FOLDER and not dialog.split_edit.isEnabled()
    folder = dialog.dest_edit.text()
    dialog.output_radios[TAR_ZST].click()
    assert dialog.dest_edit.text() == folder + ".tar.zst"
    # an archive is written whole: no hard links, merge or patch; a split size instead
    assert not dialog.hardlink_radio.isEnabled() and not dialog.merge_check.isEnabled()
    assert not dialog.base_check.isEnabled() and dialog.split_edit.isEnabled()
    assert dialog.ok_button.isEnabled()
    dialog.output_radios[TAR].click()
    assert dialog.dest_edit.text() == folder + ".tar"
    dialog.output_radios[FOLDER].click()
    assert dialog.dest_edit.text() == folder and dialog.hardlink_radio.isEnabled()
    assert not dialog.split_edit.isEnabled()
    dialog.reject()


def test_pack_dialog_refuses_bad_archive_choices(open_and_wait, window, sample_bundle: Path, tmp_path: Path) -> None:
    open_and_wait(window, sample_bundle)
    fill_pack_dialog(window, TAR, tmp_path / "release.tar", "4X")
    dialog = window.job_dialog
    assert not dialog.ok_button.isEnabled() and dialog.warning.text().startswith("Not a size: '4X'")
    dialog.split_edit.setText("1K")
    assert not dialog.ok_button.isEnabled() and "at least" in dialog.warning.text()
    dialog.split_edit.setText("4G")
    assert dialog.ok_button.isEnabled()
    dialog.dest_edit.setText(str(tmp_path / "release.zip"))
    assert not dialog.ok_button.isEnabled() and ".tar" in dialog.warning.text()
    (tmp_path / "old.tar.sha256").write_text("x")
    dialog.dest_edit.setText(str(tmp_path / "old.tar"))
    assert not dialog.ok_button.isEnabled()
    assert "old.tar.sha256" in dialog.warning.text() and "already exists" in dialog.warning.text()
    dialog.dest_edit.setText(str(tmp_path / "missing-folder" / "release.tar"))
    assert not dialog.ok_button.isEnabled() and "does not exist" in dialog.warning.text()
    dialog.dest_edit.setText(str(sample_bundle / "release.tar"))
    assert not dialog.ok_button.isEnabled() and "inside the source" in dialog.warning.text()
    dialog.reject()


def test_pack_into_a_zstd_archive_through_the_dialog(
    open_and_wait, qtbot, window, sample_bundle: Path, tmp_path: Path
) -> None:
    open_and_wait(window, sample_bundle)
    archive = tmp_path / "release.tar.zst"
    progress_seen: list[int] = []
    window.progress.bar.valueChanged.connect(progress_seen.append)
    with qtbot.waitSignal(window.job_ended, timeout=60_000) as ended:
        fill_pack_dialog(window, TAR_ZST, archive)
        window.job_dialog.verify_check.setChecked(True)
        qtbot.mouseClick(window.job_dialog.ok_button, Qt.MouseButton.LeftButton)
        assert window.progress.isVisible() and window.progress.cancel_button.isVisible()
    assert ended.args == [PACK] and window.error_dialog is None
    assert progress_seen and progress_seen[-1] == 1000
    sidecar = tmp_path / "release.tar.zst.sha256"
    assert archive.is_file() and sidecar.is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("release")) == [archive.name, sidecar.name]
    sha256sum_check(sidecar)
    report = verify(archive)
    assert report.ok and sorted(report.images) == SAMPLE_IMAGES
    text = window.result_dialog.summary.text()
    hex_ = sidecar.read_text().split()[0]
    assert "Packed 4 images" in text and str(archive) in text
    assert f"{archive.stat().st_size:,} bytes" in text and f"sha256: {hex_}" in text
    assert "sidecar: release.tar.zst.sha256" in text and "verified:" in text

    # "Open in regpack" opens the archive; the status bar shows its size and the sidecar's sha256
    with qtbot.waitSignal(window.bundle_loaded, timeout=30_000):
        qtbot.mouseClick(window.result_dialog.open_bundle_button, Qt.MouseButton.LeftButton)
    assert window.bundle.root == archive and sorted(i.name for i in window.bundle.images) == SAMPLE_IMAGES
    assert window.archive_label.isVisible()
    assert f"sha256 {hex_[:12]}" in window.archive_label.text() and "(sidecar)" in window.archive_label.text()
    assert hex_ in window.archive_label.toolTip()


def test_split_archive_through_the_dialog_and_open_by_its_first_part(
    open_and_wait, qtbot, window, synthetic_bundle: Path, tmp_path: Path
) -> None:
    open_and_wait(window, synthetic_bundle)
    archive = tmp_path / "release.tar"
    with qtbot.waitSignal(window.job_ended, timeout=60_000):
        fill_pack_dialog(window, TAR, archive, "64K")
        qtbot.mouseClick(window.job_dialog.ok_button, Qt.MouseButton.LeftButton)
    assert window.error_dialog is None
    parts = sorted(tmp_path.glob("release.tar.0*"))
    assert len(parts) > 2 and not archive.exists()
    assert all(p.stat().st_size == 64 * 1024 for p in parts[:-1])
    sha256sum_check(tmp_path / "release.tar.sha256")
    text = window.result_dialog.summary.text()
    assert f"{len(parts)} parts (release.tar.000 … {parts[-1].name})" in text
    assert f"{sum(p.stat().st_size for p in parts):,} bytes" in text
    assert "sidecar: the sha256 of each part in release.tar.sha256" in text
    joined = tmp_path / "joined.tar"
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))
    assert verify(joined).ok

    # dropping the first part opens the whole split archive
    with qtbot.waitSignal(window.bundle_loaded, timeout=30_000):
        drop(window, parts[0])
    assert window.bundle.root == archive and len(window.bundle.images) == len(inspect_json(joined)["images"])
    label = window.archive_label.text()
    total = sum(p.stat().st_size for p in parts)
    assert f"in {len(parts)} parts" in label and "release.tar.sha256" in label
    assert f"{total:,} bytes" in window.archive_label.toolTip()


def test_pack_dialog_keeps_the_archive_choice_after_a_failure(
    open_and_wait, qtbot, window, sample_bundle: Path, tmp_path: Path
) -> None:
    open_and_wait(window, sample_bundle)
    archive = tmp_path / "release.tar.zst"
    archive.write_text("someone else's")  # appears after the dialog's check: the job itself refuses it
    with qtbot.waitSignal(window.job_ended, timeout=60_000):
        window.run_job(JobOptions(PACK, sample_bundle, archive, copy=False, verify=True, split=3 << 20))
    assert window.error_dialog is not None and window.error_dialog.text() == "Pack failed"
    assert str(archive) in window.error_dialog.informativeText()
    assert archive.read_text() == "someone else's" and not (tmp_path / "release.tar.zst.sha256").exists()
    window.error_dialog.accept()
    dialog = window.ask_job(PACK)
    assert dialog is not None
    assert dialog.output() == TAR_ZST and dialog.dest_edit.text() == str(archive)
    assert dialog.split_edit.text() == "3M" and dialog.verify_check.isChecked()
    assert not dialog.ok_button.isEnabled() and "already exists" in dialog.warning.text()
    dialog.reject()


def test_cancel_while_writing_an_archive_leaves_nothing(
    open_and_wait, qtbot, window, synthetic_bundle: Path, tmp_path: Path, monkeypatch
) -> None:
    real_pack = regpack.jobs.pack
    reported = threading.Event()

    def pack_waiting_for_cancel(src, dest, *, progress, cancel, **options):  # type: ignore[no-untyped-def]
        def hook(p):  # type: ignore[no-untyped-def]
            progress(p)
            if not reported.is_set() and p.done_bytes:
                reported.set()
                cancel.wait(30)

        return real_pack(src, dest, progress=hook, cancel=cancel, **options)

    monkeypatch.setattr(regpack.jobs, "pack", pack_waiting_for_cancel)
    open_and_wait(window, synthetic_bundle)
    with qtbot.waitSignal(window.job_ended, timeout=60_000):
        fill_pack_dialog(window, TAR_ZST, tmp_path / "release.tar.zst")
        qtbot.mouseClick(window.job_dialog.ok_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(reported.is_set, timeout=30_000)
        qtbot.mouseClick(window.progress.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.jobs.cleaning, timeout=30_000)
    assert "cancelled" in window.statusBar().currentMessage().lower()
    assert window.error_dialog is None and window.result_dialog is None
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("release")] == []


def drop(window: MainWindow, path: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(
        QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    window.dropEvent(event)


def test_file_open_archive_offers_archives_and_opens_the_chosen_one(
    open_and_wait, qtbot, window, sample_bundle: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "release.tar"
    pack(sample_bundle, archive)
    assert window.open_archive_action in window.menuBar().actions()[0].menu().actions()
    assert window.open_archive_action.shortcut().toString() == "Ctrl+Shift+O"
    window.open_archive_action.trigger()
    dialog = window.archive_dialog
    assert dialog is not None and dialog.isVisible()
    offered = dialog.nameFilters()[0]
    for pattern in ("*.tar", "*.tar.zst", "*.tar.gz", "*.000"):
        assert pattern in offered
    with qtbot.waitSignal(window.bundle_loaded, timeout=30_000):
        dialog.selectFile(str(archive))
        dialog.accept()
    assert window.bundle.root == archive and sorted(i.name for i in window.bundle.images) == SAMPLE_IMAGES


def test_archive_names_that_a_drop_accepts(tmp_path: Path) -> None:
    for name in ("a.tar", "b.tar.zst", "c.TZST", "d.tar.000", "e.tar.zst.000", "f.tar.gz", "f.tgz"):
        (tmp_path / name).write_bytes(b"x")
        assert looks_like_archive(tmp_path / name), name
    for name in ("g.zip", "h.tar.001", "readme"):
        (tmp_path / name).write_bytes(b"x")
        assert not looks_like_archive(tmp_path / name), name
    (tmp_path / "folder.tar").mkdir()
    assert not looks_like_archive(tmp_path / "folder.tar")
    assert with_output("/x/release.tar.zst", FOLDER) == "/x/release" and with_output("/x/r", TAR) == "/x/r.tar"


def test_dropping_an_archive_opens_it_and_a_bad_one_is_named(
    open_and_wait, qtbot, window, sample_bundle: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "release.tar.zst"
    pack(sample_bundle, archive)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(archive))])
    enter = QDragEnterEvent(
        QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    enter.setAccepted(False)
    window.dragEnterEvent(enter)
    assert enter.isAccepted()
    with qtbot.waitSignal(window.bundle_loaded, timeout=30_000):
        drop(window, archive)
    assert window.bundle.root == archive
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"not a tar at all" * 100)
    with qtbot.waitSignal(window.load_failed, timeout=30_000):
        drop(window, garbage)
    assert str(garbage) in window.error_dialog.informativeText()
    assert "not a tar" in window.error_dialog.informativeText()


def test_status_bar_takes_the_sha256_from_the_sidecar_and_says_when_there_is_none(
    open_and_wait, window, sample_bundle: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "release.tar"
    pack(sample_bundle, archive)
    sidecar = tmp_path / "release.tar.sha256"
    # A made-up value shows that the window reads the sidecar instead of hashing the archive itself.
    sidecar.write_text("ab" * 32 + "  release.tar\n")
    open_and_wait(window, archive)
    label = window.archive_label.text()
    assert label.startswith("archive ") and "sha256 abababababab…abab (sidecar)" in label
    assert window.archive_label.toolTip().startswith(f"{archive}: tar, {archive.stat().st_size:,} bytes")
    sidecar.unlink()
    open_and_wait(window, archive)
    assert "sha256: no sidecar" in window.archive_label.text()
    sidecar.write_text("ab" * 32 + "  other.tar\n")
    open_and_wait(window, archive)
    assert "sidecar unusable: it does not list release.tar" in window.archive_label.text()
    sidecar.write_text("garbage\n")
    open_and_wait(window, archive)
    assert "sidecar unusable: not a sha256sum line" in window.archive_label.text()
    open_and_wait(window, sample_bundle)  # a folder: nothing about archives
    assert not window.archive_label.isVisible()


def test_verify_and_unpack_an_opened_archive(open_and_wait, qtbot, window, sample_bundle: Path, tmp_path: Path) -> None:
    archive = tmp_path / "release.tar.zst"
    pack(sample_bundle, archive)
    open_and_wait(window, archive)
    assert window.verify_action.isEnabled() and window.unpack_action.isEnabled()
    with qtbot.waitSignal(window.job_ended, timeout=60_000) as ended:
        window.verify_action.trigger()
    assert ended.args == ["verify"] and window.error_dialog is None
    report = window.verify_view.report
    assert report is not None and report.ok and sorted(report.images) == SAMPLE_IMAGES

    window.unpack_action.trigger()
    dialog = window.job_dialog
    assert Path(dialog.dest_edit.text()).name == "release-unpacked"
    dest = tmp_path / "unpacked"
    dialog.dest_edit.setText(str(dest))
    with qtbot.waitSignal(window.job_ended, timeout=60_000) as ended:
        qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert ended.args == [UNPACK] and window.error_dialog is None
    assert "Unpacked 4 images" in window.result_dialog.summary.text()
    for image in SAMPLE_IMAGES:
        assert (dest / image / "manifest.json").read_bytes() == (sample_bundle / image / "manifest.json").read_bytes()
    assert verify(dest).ok


def test_details_of_an_archived_image_show_its_config_and_manifest(
    open_and_wait, window, sample_bundle: Path, tmp_path: Path
) -> None:
    """The archive is read from its member index (no files); the details open the manifest and the config by
    name, which writes just those members out."""
    import json

    archive = tmp_path / "release.tar.zst"
    pack(sample_bundle, archive)
    loaded = open_and_wait(window, archive)
    web = next(i for i in loaded.bundle.images if i.name == "demo/web:1.0")
    assert window.select_image(web)
    details = window.details
    assert details.values["Cmd"].text() == "-f -c /etc/httpd.conf"
    assert details.values["Platform"].text() == "linux/amd64"
    shown = json.loads(details.manifest_text.toPlainText())
    assert shown == json.loads((sample_bundle / "demo/web:1.0/manifest.json").read_bytes())
