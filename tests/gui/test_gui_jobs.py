"""Pack, Unpack and Verify driven through the window: real core jobs on real bundles."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from PySide6.QtCore import Qt

import regpack.jobs
from regpack.gui.dialogs import PACK, UNPACK, JobOptions
from regpack.gui.models import OBJECT_ROLE, VerifyModel
from regpack.gui.theme import status_colors
from regpack.gui.window import MainWindow
from regpack.layouts import READING
from regpack.verify import verify


def run_dialog(qtbot, window: MainWindow, action, dest: Path, *, copy: bool = False) -> None:
    """Click the toolbar action, fill the dialog in and press its OK button, as a user would."""
    action.trigger()
    dialog = window.job_dialog
    assert dialog is not None and dialog.isVisible()
    dialog.dest_edit.setText(str(dest))
    (dialog.copy_radio if copy else dialog.hardlink_radio).setChecked(True)
    assert dialog.ok_button.isEnabled()
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)


def test_pack_through_the_button_gives_output_that_verifies(
    open_and_wait, qtbot, window, sample_bundle: Path, tmp_path: Path
):
    open_and_wait(window, sample_bundle)
    dest = tmp_path / "packed"
    progress_seen = []
    window.progress.bar.valueChanged.connect(progress_seen.append)
    with qtbot.waitSignal(window.job_ended, timeout=60_000) as ended:
        run_dialog(qtbot, window, window.pack_action, dest)
        # while the job runs nothing else may start
        assert not window.pack_action.isEnabled() and not window.verify_action.isEnabled()
        assert not window.open_action.isEnabled()
        assert window.progress.isVisible()
    assert ended.args == [PACK]
    assert window.error_dialog is None
    report = verify(dest)
    assert report.ok, [str(f) for f in report.findings]
    assert sorted(report.images) == ["api:2.1", "demo/base:3.19", "demo/tools:1.0", "demo/web:1.0"]
    assert (dest / "docker/registry/v2/blobs/sha256").is_dir()
    result = window.result_dialog
    assert result is not None and result.isVisible()
    assert str(dest) in result.summary.text() and "Packed 4 images" in result.summary.text()
    assert result.open_folder_button.isEnabled()
    assert window.pack_action.isEnabled() and not window.progress.isVisible()
    assert progress_seen and progress_seen[-1] == 1000  # the bar reached 100%

    # "Open in regpack" loads the packed storage: same images, now a registry layout that can be unpacked
    with qtbot.waitSignal(window.bundle_loaded, timeout=30_000):
        qtbot.mouseClick(result.open_bundle_button, Qt.MouseButton.LeftButton)
    assert window.bundle.layout.value == "registry" and len(window.bundle.images) == 4
    assert window.unpack_action.isEnabled() and not window.pack_action.isEnabled()
    api = next(i for i in window.bundle.images if i.name == "api:2.1")
    window.select_image(api)  # details read config and manifest from registry storage now
    assert window.details.values["Entrypoint"].text() == "/app/api"
    assert json.loads(window.details.manifest_text.toPlainText())["mediaType"].endswith("oci.image.manifest.v1+json")


def test_unpack_through_the_button_gives_skopeo_dirs(open_and_wait, qtbot, window, sample_bundle: Path, tmp_path: Path):
    packed = tmp_path / "packed"
    regpack.jobs.pack(sample_bundle, packed)
    open_and_wait(window, packed)
    dest = tmp_path / "unpacked"
    with qtbot.waitSignal(window.job_ended, timeout=60_000) as ended:
        run_dialog(qtbot, window, window.unpack_action, dest, copy=True)
    assert ended.args == [UNPACK]
    assert window.error_dialog is None
    assert (dest / "demo/web:1.0/manifest.json").read_bytes() == (
        sample_bundle / "demo/web:1.0/manifest.json"
    ).read_bytes()
    assert verify(dest).ok
    assert "Unpacked 4 images" in window.result_dialog.summary.text()


def test_cancel_mid_job_leaves_no_destination(
    open_and_wait, qtbot, window, synthetic_bundle: Path, tmp_path: Path, monkeypatch
):
    """The job stops inside core's first progress report until Cancel is clicked, so the cancel lands mid-job."""
    real_pack = regpack.jobs.pack
    reported = threading.Event()
    seen = []

    def pack_waiting_for_cancel(src, dest, *, progress, cancel, **options):
        def hook(p):
            progress(p)
            if not reported.is_set() and p.message != READING:  # writing, not the read before it
                seen.append(p)
                reported.set()
                cancel.wait(30)

        return real_pack(src, dest, progress=hook, cancel=cancel, **options)

    monkeypatch.setattr(regpack.jobs, "pack", pack_waiting_for_cancel)
    open_and_wait(window, synthetic_bundle)
    dest = tmp_path / "packed"
    with qtbot.waitSignal(window.job_ended, timeout=60_000):
        run_dialog(qtbot, window, window.pack_action, dest, copy=True)
        qtbot.waitUntil(reported.is_set, timeout=30_000)
        assert window.progress.cancel_button.isEnabled()
        qtbot.mouseClick(window.progress.cancel_button, Qt.MouseButton.LeftButton)
    assert seen[0].done_files < seen[0].total_files  # it really was mid-job
    assert not dest.exists()
    # the partial output goes in the background; the window says so until it is gone
    qtbot.waitUntil(lambda: not window.jobs.cleaning, timeout=30_000)
    assert not window.cleanup_label.isVisible()
    assert not list(tmp_path.glob("packed.partial-*"))
    assert "cancelled" in window.statusBar().currentMessage().lower()
    assert window.error_dialog is None and window.result_dialog is None
    assert window.pack_action.isEnabled()


def test_a_failing_job_names_the_file_and_reason_in_one_dialog(
    open_and_wait, qtbot, window, sample_bundle: Path, tmp_path: Path
):
    open_and_wait(window, sample_bundle)
    in_the_way = tmp_path / "taken"
    in_the_way.write_text("not a folder")
    with qtbot.waitSignal(window.job_ended, timeout=60_000):
        window.run_job(JobOptions(PACK, sample_bundle, in_the_way, copy=False, verify=False))
    dialog = window.error_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.text() == "Pack failed"
    assert str(in_the_way) in dialog.informativeText()
    assert in_the_way.read_text() == "not a folder"


def test_job_dialog_refuses_a_destination_that_is_in_use(
    open_and_wait, qtbot, window, sample_bundle: Path, tmp_path: Path
):
    open_and_wait(window, sample_bundle)
    window.pack_action.trigger()
    dialog = window.job_dialog
    assert not Path(dialog.dest_edit.text()).exists()  # the suggestion is a new folder
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "file").write_text("x")
    dialog.dest_edit.setText(str(busy))
    assert not dialog.ok_button.isEnabled() and "not empty" in dialog.warning.text()
    dialog.dest_edit.setText(str(sample_bundle / "inside"))
    assert not dialog.ok_button.isEnabled()
    dialog.dest_edit.setText(str(tmp_path / "fresh"))
    assert dialog.ok_button.isEnabled()
    dialog.reject()


def verify_rows(window: MainWindow) -> dict[str, tuple[str, object]]:
    model = window.verify_view.model
    return {
        model.index(r, VerifyModel.IMAGE).data(): (
            model.index(r, VerifyModel.STATUS).data(),
            model.index(r, VerifyModel.IMAGE).data(Qt.ItemDataRole.BackgroundRole),
        )
        for r in range(model.rowCount())
    }


def test_corrupt_blob_turns_its_image_red_in_verify(open_and_wait, qtbot, window, sample_bundle: Path, tmp_path: Path):
    web = sample_bundle / "demo/web:1.0"
    layer = web / json.loads((web / "manifest.json").read_bytes())["layers"][1]["digest"][7:]
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes: only re-hashing notices
    layer.write_bytes(bytes(data))
    open_and_wait(window, sample_bundle)
    assert window.bundle.problems == []  # reading alone cannot tell

    with qtbot.waitSignal(window.job_ended, timeout=60_000):
        window.verify_action.trigger()
    rows = verify_rows(window)
    status, background = rows["demo/web:1.0"]
    assert "digest mismatch" in status
    assert background.color() == status_colors().error_background
    for name in ("api:2.1", "demo/base:3.19", "demo/tools:1.0"):
        assert rows[name] == ("ok", None)
    assert window.tabs.currentWidget() is window.verify_view
    assert window.verify_view.summary.property("state") == "error"

    # the images table shows it too
    proxy = window.proxy
    coloured = {
        proxy.index(r, 0).data(OBJECT_ROLE).image.name: proxy.index(r, 0).data(Qt.ItemDataRole.BackgroundRole)
        for r in range(proxy.rowCount())
    }
    assert coloured["demo/web:1.0"].color() == status_colors().error_background and coloured["api:2.1"] is None

    exported = tmp_path / "report.json"
    window.verify_view.export_json(exported)
    doc = json.loads(exported.read_text())
    assert doc["ok"] is False
    bad = [i for i in doc["images"] if not i["ok"]]
    assert [i["name"] for i in bad] == ["demo/web:1.0"]
    assert bad[0]["findings"][0]["code"] == "digest-mismatch"


def test_verify_of_a_good_bundle_is_all_ok(open_and_wait, qtbot, window, synthetic_bundle: Path):
    open_and_wait(window, synthetic_bundle)
    with qtbot.waitSignal(window.job_ended, timeout=60_000):
        qtbot.mouseClick(window.verify_view.verify_button, Qt.MouseButton.LeftButton)
    rows = verify_rows(window)
    assert len(rows) == 40 and all(status == "ok" for status, _ in rows.values())
    assert window.verify_view.summary.text().startswith("OK: 40 images verified")
    assert window.verify_view.export_button.isEnabled()


def test_pack_with_verify_shows_the_verify_phase_and_reports_it(
    open_and_wait, qtbot, window, synthetic_bundle: Path, tmp_path: Path
):
    open_and_wait(window, synthetic_bundle)
    phases: list[str] = []
    window.jobs.progress.connect(lambda job, estimate: phases.append(estimate.progress.message))
    dest = tmp_path / "packed"
    with qtbot.waitSignal(window.job_ended, timeout=60_000):
        window.run_job(JobOptions(PACK, synthetic_bundle, dest, copy=True, verify=True))
    assert "packing" in phases and "verifying" in phases
    assert phases.index("verifying") > phases.index("packing")  # its own phase, after the writing
    summary = window.result_dialog.summary.text()
    report = verify(dest)
    assert f"verified: {report.files_hashed} blobs, " in summary


def test_cancel_while_removing_the_partial_output_frees_the_window(
    open_and_wait, qtbot, window, synthetic_bundle: Path, tmp_path: Path, monkeypatch
):
    """Clean-up after a cancel runs in the background: the job is reported cancelled when the work stops."""
    import shutil

    real_rmtree = shutil.rmtree
    removing = threading.Event()
    go_on = threading.Event()

    def slow_rmtree(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if ".partial-" in str(path):
            removing.set()
            go_on.wait(30)
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", slow_rmtree)
    real_pack = regpack.jobs.pack
    parked = threading.Event()

    def pack_parked(src, dest, *, progress, cancel, **options):  # type: ignore[no-untyped-def]
        def hook(p):  # type: ignore[no-untyped-def]
            progress(p)
            if not parked.is_set() and p.message != READING:  # writing, not the read before it
                parked.set()
                cancel.wait(30)

        return real_pack(src, dest, progress=hook, cancel=cancel, **options)

    monkeypatch.setattr(regpack.jobs, "pack", pack_parked)
    open_and_wait(window, synthetic_bundle)
    dest = tmp_path / "packed"
    with qtbot.waitSignal(window.job_ended, timeout=60_000):
        window.run_job(JobOptions(PACK, synthetic_bundle, dest, copy=True, verify=False))
        qtbot.waitUntil(parked.is_set, timeout=30_000)
        window.cancel_job()
    assert removing.is_set()  # the job was reported while its staging folder was still being removed
    assert window.cleanup_label.isVisible() and window.pack_action.isEnabled() and not window.busy()
    assert list(tmp_path.glob("packed.partial-*"))
    go_on.set()
    qtbot.waitUntil(lambda: not window.jobs.cleaning, timeout=30_000)
    assert not list(tmp_path.glob("packed.partial-*")) and not dest.exists()
    assert not window.cleanup_label.isVisible()
    assert "removed" in window.statusBar().currentMessage()
