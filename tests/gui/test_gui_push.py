"""Push… from the window: the dialog's checks, a dry run, and a real push into a docker-registry on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from regpack.gui.window import MainWindow
from regpack.push import Target, push
from regpack.transfer import Access
from tests.support.tools import Skopeo, missing_tools, start_registry


def open_push(qtbot, window: MainWindow, registry: str, *, dry_run: bool):  # type: ignore[no-untyped-def]
    window.push_action.trigger()
    dialog = window.push_dialog
    assert dialog is not None and dialog.isVisible()
    dialog.registry_edit.setText(registry)
    dialog.tls_check.setChecked(False)
    dialog.dry_run_check.setChecked(dry_run)
    return dialog


def test_the_dialog_refuses_what_cannot_be_a_push(open_and_wait, qtbot, window, sample_bundle: Path, tmp_path: Path):
    open_and_wait(window, sample_bundle)
    dialog = open_push(qtbot, window, "", dry_run=True)
    assert not dialog.ok_button.isEnabled()
    dialog.registry_edit.setText("myorg/app")  # no registry host
    assert not dialog.ok_button.isEnabled() and "HOST" in dialog.problem.text()
    dialog.registry_edit.setText("127.0.0.1:5000/site")
    assert dialog.ok_button.isEnabled()
    dialog.authfile_edit.setText(str(tmp_path / "nowhere.json"))
    assert not dialog.ok_button.isEnabled() and "nowhere.json" in dialog.problem.text()
    dialog.authfile_edit.setText("")
    dialog.user_edit.setText("alice")
    dialog.password_edit.setText("secret-word")
    options = dialog.options()
    assert options.target.host == "127.0.0.1:5000" and options.target.namespace == "site"
    assert options.username == "alice" and "secret-word" not in repr(options)


def test_dry_run_lists_every_destination(open_and_wait, qtbot, window, sample_bundle: Path):
    open_and_wait(window, sample_bundle)
    dialog = open_push(qtbot, window, "127.0.0.1:9/site", dry_run=True)
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    box = window.info_dialog
    assert box is not None and box.isVisible()
    assert "docker://127.0.0.1:9/site/demo/web:1.0" in box.detailedText()
    assert len(box.detailedText().splitlines()) == 4


def test_push_from_the_window_arrives_with_the_same_digests(
    open_and_wait, qtbot, window, sample_bundle: Path, tmp_path: Path
):
    missing = missing_tools()
    if missing:
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"needs {', '.join(missing)}", pytrace=False)
        pytest.skip(f"needs {', '.join(missing)}")
    registry = start_registry(tmp_path / "storage", tmp_path / "run")
    try:
        open_and_wait(window, sample_bundle)
        dialog = open_push(qtbot, window, f"{registry.host}/site", dry_run=False)
        with qtbot.waitSignal(window.job_ended, timeout=120_000) as ended:
            qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
            assert not window.push_action.isEnabled() and window.progress.isVisible()
        assert ended.args == ["push"]
        assert window.error_dialog is None
        box = window.info_dialog
        assert box is not None and box.text() == "4 images: 4 pushed, 0 already there, 0 failed"
        skopeo = Skopeo(tmp_path / "skopeo")
        for folder in sorted(sample_bundle.rglob("manifest.json")):
            ref = folder.parent.relative_to(sample_bundle).as_posix()
            raw = skopeo.inspect_raw(registry.ref(f"site/{ref}"))
            assert hashlib.sha256(raw).digest() == hashlib.sha256(folder.read_bytes()).digest(), ref
        assert window.push_action.isEnabled()
    finally:
        registry.stop()


def test_pull_from_the_window_packs_the_list_and_opens_it(
    open_and_wait, qtbot, window, sample_bundle: Path, tmp_path: Path
):
    missing = missing_tools()
    if missing:
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"needs {', '.join(missing)}", pytrace=False)
        pytest.skip(f"needs {', '.join(missing)}")
    registry = start_registry(tmp_path / "storage", tmp_path / "run")
    try:
        assert push(sample_bundle, Target(registry.host, "rel"), access=Access(tls_verify=False)).ok
        listing = tmp_path / "release.txt"
        refs = sorted(p.parent.relative_to(sample_bundle).as_posix() for p in sample_bundle.rglob("manifest.json"))
        listing.write_text("# release\n" + "".join(f"{registry.host}/rel/{ref}\n" for ref in refs))
        window.pull_action.trigger()
        dialog = window.pull_dialog
        assert dialog is not None and not dialog.ok_button.isEnabled()
        dialog.list_edit.setText(str(listing))
        dialog.dest_edit.setText(str(tmp_path / "pulled"))
        dialog.tls_check.setChecked(False)
        assert dialog.ok_button.isEnabled(), dialog.problem.text()
        with qtbot.waitSignal(window.bundle_loaded, timeout=120_000):
            qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
        assert window.error_dialog is None
        assert window.info_dialog is not None and window.info_dialog.text().startswith("4 images: 4 pulled")
        assert window.bundle is not None and window.bundle.layout.value == "registry"
        assert sorted(i.name for i in window.bundle.images) == [f"rel/{ref}" for ref in refs]
    finally:
        registry.stop()


def test_pull_from_the_window_over_tls_with_a_certificate_folder(
    open_and_wait, qtbot, window, sample_bundle: Path, tmp_path: Path
):
    """A site's registry: its own CA (the dialog's certificate folder), a login (the auth file), TLS verified."""
    from tests.support.secure import missing_secure_tools, start_secure_registry

    missing = missing_tools() + missing_secure_tools()
    if missing:
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"needs {', '.join(missing)}", pytrace=False)
        pytest.skip(f"needs {', '.join(missing)}")
    secure = start_secure_registry(tmp_path / "secure")
    try:
        access = Access(secure.authfile, True, secure.cert_dir)
        assert push(sample_bundle, Target(secure.host, "site"), access=access).ok
        listing = tmp_path / "release.txt"
        listing.write_text(f"{secure.host}/site/demo/web:1.0\n{secure.host}/site/api:2.1\n")
        window.pull_action.trigger()
        dialog = window.pull_dialog
        assert dialog is not None
        dialog.list_edit.setText(str(listing))
        dialog.dest_edit.setText(str(tmp_path / "pulled"))
        dialog.authfile_edit.setText(str(secure.authfile))
        dialog.cert_edit.setText(str(tmp_path / "no-such-folder"))
        assert not dialog.ok_button.isEnabled() and "no-such-folder" in dialog.problem.text()
        dialog.cert_edit.setText(str(secure.cert_dir))
        assert dialog.tls_check.isChecked() and dialog.ok_button.isEnabled(), dialog.problem.text()
        assert dialog.options().cert_dir == secure.cert_dir
        with qtbot.waitSignal(window.bundle_loaded, timeout=120_000):
            qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
        assert window.error_dialog is None
        assert window.info_dialog is not None and window.info_dialog.text().startswith("2 images: 2 pulled")
        assert window.bundle is not None
        assert sorted(i.name for i in window.bundle.images) == ["site/api:2.1", "site/demo/web:1.0"]
    finally:
        secure.registry.stop()
