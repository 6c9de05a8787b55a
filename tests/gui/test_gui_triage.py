"""Triage of a received bundle: bad blobs grouped, problems only, filter, exports; who uses a layer; compare."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

import regpack.jobs
from regpack.analysis import analyse, compare
from regpack.errors import Code, Problem, Severity
from regpack.gui.compare import CompareModel
from regpack.gui.models import (
    OBJECT_ROLE,
    BadBlobModel,
    BlobTreeModel,
    ImageTableModel,
    VerifyFilterProxy,
    VerifyModel,
    bad_blobs,
    digest_prefix,
    natural_key,
    verdicts,
)
from regpack.gui.theme import status_colors
from regpack.layouts import read
from regpack.verify import Report
from tests.support import ocibuild as ob


@pytest.fixture
def packed_with_bad_base(sample_bundle: Path, tmp_path: Path) -> tuple[Path, str]:
    """The sample packed into registry storage (one file a blob), then its most shared layer corrupted."""
    packed = tmp_path / "packed"
    regpack.jobs.pack(sample_bundle, packed)
    shared = analyse(read(packed)).blobs[0]
    assert shared.count == 4
    data_file = shared.blob.path
    data = bytearray(data_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    data_file.write_bytes(bytes(data))
    return packed, str(shared.blob.digest)


def test_one_corrupted_shared_layer_is_one_problem_in_every_image_using_it(
    open_and_wait, qtbot, window, packed_with_bad_base, tmp_path: Path
) -> None:
    packed, digest = packed_with_bad_base
    open_and_wait(window, packed)
    with qtbot.waitSignal(window.job_ended, timeout=60_000):
        window.verify_action.trigger()
    view = window.verify_view
    assert view.blob_model.rowCount() == 1
    bad = view.blob_model.blob(0)
    assert bad.digest == digest and bad.problem == "digest mismatch"
    assert bad.images == ("api:2.1", "demo/base:3.19", "demo/tools:1.0", "demo/web:1.0")
    assert view.summary.text().startswith("1 broken blob in 4 of 4 images")
    assert view.views.currentWidget() is view.blob_table and view.views.tabText(1) == "Bad blobs (1)"

    # the layers tree marks the broken layer
    row = window.blob_model.row_of_digest(digest)
    index = window.blob_model.index(row, BlobTreeModel.NAME)
    assert "digest mismatch" in index.data()
    assert index.data(Qt.ItemDataRole.BackgroundRole).color() == status_colors().error_background
    other = window.blob_model.index(1 if row == 0 else 0, BlobTreeModel.NAME)
    assert other.data(Qt.ItemDataRole.BackgroundRole) is None

    # activating the bad blob shows who uses it: the table filtered to those images
    window.verify_view.blob_activated.emit(bad)
    assert window.search.text() == digest and window.proxy.rowCount() == 4

    # exports: JSON, text and HTML, and the window says where each went
    for name in ("report.json", "report.txt", "report.html"):
        written = view.export(tmp_path / name)
        view.exported.emit(str(written))
        assert str(written) in window.statusBar().currentMessage()
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["bad_blobs"] == [
        {"digest": digest, "path": bad.path, "code": "digest-mismatch", "message": bad.message,
         "images": list(bad.images)}
    ]  # fmt: skip
    text = (tmp_path / "report.txt").read_text()
    assert "FAILED" in text and f"{digest}: digest mismatch — breaks 4 image(s)" in text
    assert "<h1>FAILED" in (tmp_path / "report.html").read_text()


def test_verify_view_sorts_by_status_filters_and_shows_problems_only(
    open_and_wait, qtbot, window, sample_bundle: Path
) -> None:
    web = sample_bundle / "demo/web:1.0"
    layer = web / json.loads((web / "manifest.json").read_bytes())["layers"][1]["digest"][7:]
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0xFF
    layer.write_bytes(bytes(data))
    open_and_wait(window, sample_bundle)
    with qtbot.waitSignal(window.job_ended, timeout=60_000):
        window.verify_action.trigger()
    view = window.verify_view
    proxy = view.proxy

    def names() -> list[str]:
        return [proxy.index(r, VerifyModel.IMAGE).data() for r in range(proxy.rowCount())]

    assert names()[0] == "demo/web:1.0"  # errors first
    view.table.sortByColumn(VerifyModel.STATUS, Qt.SortOrder.AscendingOrder)
    assert names()[-1] == "demo/web:1.0"
    view.problems_only.setChecked(True)
    assert names() == ["demo/web:1.0"]
    view.problems_only.setChecked(False)
    window.search.setText("demo/")
    assert sorted(names()) == ["demo/base:3.19", "demo/tools:1.0", "demo/web:1.0"]


def test_bad_blob_grouping_counts_each_blob_once() -> None:
    def problem(image: str, path: str, code: Code = Code.DIGEST_MISMATCH) -> Problem:
        return Problem(Severity.ERROR, code, "bad", Path(path), image)

    hex_a, hex_b = "a" * 64, "b" * 64
    findings = [
        problem("app-10:1", f"/r/app-10:1/{hex_a}"),  # skopeo dir folders hold a copy each: grouped by digest
        problem("app-2:1", f"/r/app-2:1/{hex_a}"),
        problem("app-2:1", f"/s/docker/registry/v2/blobs/sha256/bb/{hex_b}/data", Code.MISSING_BLOB),
    ]
    grouped = bad_blobs(findings)
    assert [(b.digest, b.images) for b in grouped] == [
        (f"sha256:{hex_a}", ("app-2:1", "app-10:1")),
        (f"sha256:{hex_b}", ("app-2:1",)),
    ]


def test_new_models_pass_modeltester(qtmodeltester, sample_bundle: Path) -> None:
    findings = (
        Problem(Severity.ERROR, Code.DIGEST_MISMATCH, "m", Path("/x/" + "c" * 64), "a:1"),
        Problem(Severity.WARNING, Code.EMPTY, "stray folder"),
    )
    blobs = BadBlobModel()
    blobs.set_blobs(bad_blobs(findings))
    qtmodeltester.check(blobs)
    source = VerifyModel()
    source.set_verdicts(verdicts(Report(Path("/b"), "skopeo-dir", findings, ("a:1", "b:1"), 0, 0)))
    proxy = VerifyFilterProxy()
    proxy.setSourceModel(source)
    proxy.set_problems_only(True)
    qtmodeltester.check(proxy)
    assert proxy.rowCount() == 2  # a:1 and the bundle row
    bundle = read(sample_bundle)
    images = {i.name: i for i in bundle.images}
    model = CompareModel()
    model.set_comparison(compare(bundle, images["demo/web:1.0"], images["api:2.1"]))
    qtmodeltester.check(model)


def test_filter_finds_images_by_layer_or_config_digest_prefix(open_and_wait, window, sample_bundle: Path) -> None:
    loaded = open_and_wait(window, sample_bundle)
    base = loaded.analysis.blobs[0]  # the most shared layer
    window.search.setText(base.blob.digest.hex[:10])
    assert window.proxy.rowCount() == base.count == 4
    api = next(i for i in loaded.bundle.images if i.name == "api:2.1")
    config = api.manifest.config.digest
    window.search.setText(f"sha256:{config.hex[:8]}")
    shown = [window.proxy.index(r, 0).data(OBJECT_ROLE).image.name for r in range(window.proxy.rowCount())]
    assert shown == ["api:2.1"]
    window.search.setText("zz9999")
    assert window.proxy.rowCount() == 0
    assert digest_prefix("abc") is None and digest_prefix("abcdef") == "abcdef" and digest_prefix("sha256:ab") == "ab"


def test_tree_menu_copies_digest_shows_users_and_selects(open_and_wait, qtbot, window, sample_bundle: Path) -> None:
    loaded = open_and_wait(window, sample_bundle)
    top = window.blob_model.index(0, 0)
    actions = {a.text(): a for a in window.tree_menu_actions(top)}
    assert set(actions) == {"Copy full digest", "Show the 4 images using this layer"}
    actions["Copy full digest"].trigger()
    from PySide6.QtGui import QGuiApplication

    digest = str(loaded.analysis.blobs[0].blob.digest)
    assert QGuiApplication.clipboard().text() == digest
    window.search.setText("nothing-matches-this")
    actions["Show the 4 images using this layer"].trigger()
    assert window.search.text() == digest and window.proxy.rowCount() == 4
    child = window.blob_model.index(2, 0, top)
    image = window.blob_model.data(child, OBJECT_ROLE)
    select = next(a for a in window.tree_menu_actions(child) if a.text().startswith("Select"))
    select.trigger()
    assert window.selected_images() == [image]
    # Details > Layers: the same question from the other side
    window.search.clear()
    window.details.tabs.setCurrentWidget(window.details.layers_view)
    window.details.layers_view.selectRow(0)
    window.details.show_users_action.trigger()
    first_layer = window.details.layers.rows()[0].digest
    assert window.search.text() == first_layer


def test_two_tags_of_one_image_count_as_one_image(open_and_wait, window, tmp_path: Path) -> None:
    base = ob.layer(ob.text_files("base", 2, 500))
    same = ob.image([base, ob.layer(ob.text_files("app", 1, 300))])
    other = ob.image([base])
    bundle = ob.write_dir_bundle(tmp_path / "b", {"app:1.0": same, "app:latest": same, "other:1": other})
    open_and_wait(window, bundle)
    row = window.blob_model.row_of_digest(f"sha256:{base.blob.digest.split(':')[1]}")
    assert window.blob_model.index(row, BlobTreeModel.USED_BY).data() == "2 images (3 tags)"


def test_two_selected_images_show_what_they_share_and_add(open_and_wait, qtbot, window, sample_bundle: Path) -> None:
    loaded = open_and_wait(window, sample_bundle)
    images = {i.name: i for i in loaded.bundle.images}
    window.select_image(images["demo/web:1.0"])
    second = window.proxy.mapFromSource(window.image_model.index(window.image_model.row_of(images["api:2.1"]), 0))
    window.table.selectionModel().select(
        second, window.table.selectionModel().SelectionFlag.Select | window.table.selectionModel().SelectionFlag.Rows
    )
    assert window.tabs.currentWidget() is window.compare_view
    c = window.compare_view.comparison
    assert c is not None and {c.first.name, c.second.name} == {"demo/web:1.0", "api:2.1"}
    expected = compare(loaded.bundle, c.first, c.second)
    assert [b.digest for b in c.shared] == [b.digest for b in expected.shared] and c.shared
    assert c.only_first and c.only_second
    text = window.compare_view.summary.text()
    assert f"share {len(c.shared)} blob(s)" in text and "adds" in text
    model = window.compare_view.model
    wheres = [model.index(r, 0).data(OBJECT_ROLE).where for r in range(model.rowCount())]
    assert wheres == ["both"] * len(c.shared) + ["first"] * len(c.only_first) + ["second"] * len(c.only_second)


def test_natural_order_in_table_and_tree(open_and_wait, window, tmp_path: Path) -> None:
    refs = {f"app-{n}:v{n}": ob.image([ob.layer(ob.text_files(f"a{n}", 1, 100))]) for n in (10, 2, 1)}
    open_and_wait(window, ob.write_dir_bundle(tmp_path / "b", refs))
    table = [window.proxy.index(r, ImageTableModel.REPOSITORY).data() for r in range(window.proxy.rowCount())]
    assert table == ["app-1", "app-2", "app-10"]
    window.group_check.setChecked(True)
    tree = [window.blob_model.index(r, 0).data() for r in range(window.blob_model.rowCount())]
    assert tree == ["app-1:v1", "app-2:v2", "app-10:v10"]
    assert sorted(["v1.10", "v1.9"], key=natural_key) == ["v1.9", "v1.10"]
