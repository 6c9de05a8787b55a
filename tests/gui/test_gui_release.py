"""Comparing the open bundle with a base: status and byte columns, layer marks, the patch's composition and the
selected image's layers, all equal to what `regpack diff --json` says; bases as folders, archives, inventories."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from regpack.gui.models import OBJECT_ROLE, SORT_ROLE, ImageTableModel
from regpack.gui.release import SHIPPING, BaseLayersModel
from regpack.gui.sizes import human_size
from tests.core.conftest import BASE, sha
from tests.core.test_patch import Releases

ROOT = Path(__file__).resolve().parents[2]


def regpack(*args: str | Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "regpack", *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def rel(tmp_path: Path) -> Releases:
    return Releases(tmp_path)


def compare(qtbot, window, base: Path):  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(window.compared, timeout=30_000) as blocker:
        assert window.compare_with(base)
    qtbot.waitUntil(lambda: not window.busy())
    return blocker.args[0]


def table_rows(window) -> dict[str, tuple[str, int, int]]:  # type: ignore[no-untyped-def]
    """image name -> (status, new bytes, bytes in base) as the images table holds them (raw sort values)."""
    model = window.image_model
    out = {}
    for row in range(model.rowCount()):
        name = model.index(row, 0).data(OBJECT_ROLE).image.name
        values = [model.index(row, c).data(SORT_ROLE) for c in ImageTableModel.COMPARED]
        out[name] = (values[0], values[1], values[2])
    return out


def expected(doc: dict) -> dict[str, tuple[str, int, int]]:  # type: ignore[type-arg]
    return {
        i["name"]: (i["status"], i["added_bytes"], i["shared_bytes"]) for i in doc["images"] if i["status"] != "removed"
    }


# the offscreen platform cannot raise a tooltip nor pass size hints
@pytest.mark.qt_log_ignore(r"This plugin does not support (raise|propagateSizeHints)\(\)")
def test_compare_with_a_folder_fills_every_view_with_the_numbers_of_diff_json(  # type: ignore[no-untyped-def]
    qtbot, qtmodeltester, window, open_and_wait, rel: Releases
) -> None:
    doc = json.loads(regpack("diff", rel.old, rel.new, "--json"))
    open_and_wait(window, rel.new)
    assert all(window.table.isColumnHidden(c) for c in ImageTableModel.COMPARED)
    d = compare(qtbot, window, rel.old)
    assert d is window.release_diff
    assert window.tabs.currentWidget() is window.release_view
    # status, new bytes, bytes in base per image: exactly the CLI's
    assert table_rows(window) == expected(doc)
    assert not any(window.table.isColumnHidden(c) for c in ImageTableModel.COMPARED)
    assert window.image_model.index(0, ImageTableModel.STATUS).data() in {"added", "changed", "unchanged"}
    qtmodeltester.check(window.image_model)
    # removed images are listed by name
    removed = [
        window.release_view.removed.item(i).text().split()[0] for i in range(window.release_view.removed.count())
    ]
    assert removed == [i["name"] for i in doc["images"] if i["status"] == "removed"] == ["app:1.0", "gone:1"]
    # the chart: what each way of shipping sends and leaves to the base, from the totals
    totals = doc["totals"]
    sent = [totals["patch_bytes"], totals["differential_bytes"], totals["full_bytes"]]
    assert window.release_view.bar_values == {
        "sent": sent,
        "left to the base": [totals["full_bytes"] - s for s in sent],
    }
    assert len(SHIPPING) == 3
    patch_bar = window.release_view.chart.chart().series()[0].barSets()[0]
    patch_bar.hovered.emit(True, 0)  # hovering a bar names the way of shipping and its exact bytes
    assert window.release_view.hovered_text == (
        f"blob-level patch\nsent: {human_size(totals['patch_bytes'])} ({totals['patch_bytes']:,} bytes)"
    )
    assert "1 unchanged" in window.release_view.summary.text()
    # the layers tree marks the base layer, and only the layers the base holds
    tree = window.blob_model
    qtmodeltester.check(tree)
    marks = {
        tree.index(r, 0).data(OBJECT_ROLE).blob.digest.hex: "✓ in base" in tree.index(r, 0).data()
        for r in range(tree.rowCount())
    }
    assert marks[sha(BASE)] is True
    assert marks[sha(b"tools " * 100)] is False
    window.group_check.setChecked(True)  # grouped by image: the layers are the children
    qtmodeltester.check(tree)
    window.group_check.setChecked(False)


def test_selecting_an_image_shows_which_layers_come_from_the_base_and_who_holds_them(  # type: ignore[no-untyped-def]
    qtbot, qtmodeltester, window, open_and_wait, rel: Releases
) -> None:
    open_and_wait(window, rel.new)
    compare(qtbot, window, rel.old)
    image = next(i for i in window.bundle.images if i.name == "tools:1")
    assert window.select_image(image)
    model = window.release_view.model
    qtmodeltester.check(model)
    rows = {model.row(r).digest.hex: model.row(r) for r in range(model.rowCount())}
    base_layer = rows[sha(BASE)]
    assert base_layer.in_base
    # every image of release 1 is built on BASE (the multi-arch one in each platform): all hold it
    assert set(base_layer.holders) == {"app:1.0", "app:latest", "gone:1", "multi:1"}
    own = rows[sha(b"tools " * 100)]
    assert not own.in_base and own.holders == ()
    texts = [model.index(r, BaseLayersModel.FROM).data() for r in range(model.rowCount())]
    assert "the base" in texts and "new: the patch carries it" in texts
    assert "tools:1" in window.release_view.layers_label.text()
    # the numbers of the table match the image's row: blobs held by the base are its "in base" bytes
    held = sum(r.size for r in rows.values() if r.in_base)
    row = window.image_model.row_of(image)
    manifest_bytes = len(rel.fresh.manifest)  # the manifest is never in the base: it is new
    assert window.image_model.index(row, ImageTableModel.IN_BASE).data(SORT_ROLE) == held
    assert window.image_model.index(row, ImageTableModel.NEW).data(SORT_ROLE) == (
        sum(r.size for r in rows.values() if not r.in_base) + manifest_bytes
    )


def test_an_inventory_or_an_archive_as_base_gives_the_same_numbers(  # type: ignore[no-untyped-def]
    qtbot, window, open_and_wait, rel: Releases, tmp_path: Path
) -> None:
    doc = json.loads(regpack("diff", rel.old, rel.new, "--json"))
    regpack("inventory", rel.old, "-o", tmp_path / "have.json")
    regpack("pack", rel.old, "-o", tmp_path / "r1.tar.zst")
    open_and_wait(window, rel.new)
    for base in (tmp_path / "have.json", tmp_path / "r1.tar.zst"):
        compare(qtbot, window, base)
        assert table_rows(window) == expected(doc), base
        assert window.release_diff is not None and window.release_diff.patch_bytes == doc["totals"]["patch_bytes"]
    compare(qtbot, window, tmp_path / "have.json")
    image = next(i for i in window.bundle.images if i.name == "tools:1")
    window.select_image(image)
    model = window.release_view.model
    held = [r for r in range(model.rowCount()) if model.row(r).in_base]
    assert held and all(
        model.index(r, BaseLayersModel.HOLDERS).data() == "(an inventory does not name them)" for r in held
    )


def test_clearing_the_comparison_hides_its_columns_and_marks(qtbot, window, open_and_wait, rel: Releases) -> None:  # type: ignore[no-untyped-def]
    open_and_wait(window, rel.new)
    compare(qtbot, window, rel.old)
    assert window.clear_compare_action.isEnabled()
    with qtbot.waitSignal(window.compared) as blocker:
        window.release_view.clear_button.click()
    assert blocker.args[0] is None and window.base is None and window.release_diff is None
    assert all(window.table.isColumnHidden(c) for c in ImageTableModel.COMPARED)
    assert set(table_rows(window).values()) == {("", -1, -1)}
    tree = window.blob_model
    assert not any("in base" in tree.index(r, 0).data() for r in range(tree.rowCount()))
    assert window.release_view.bar_values == {} and window.release_view.model.rowCount() == 0
    assert not window.clear_compare_action.isEnabled()


def test_reloading_keeps_the_comparison(qtbot, window, open_and_wait, rel: Releases) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads(regpack("diff", rel.old, rel.new, "--json"))
    open_and_wait(window, rel.new)
    compare(qtbot, window, rel.old)
    open_and_wait(window, rel.new)
    assert table_rows(window) == expected(doc)


def test_a_bad_base_is_reported_by_name_and_leaves_no_comparison(  # type: ignore[no-untyped-def]
    qtbot, window, open_and_wait, rel: Releases, tmp_path: Path
) -> None:
    bad = tmp_path / "have.json"
    bad.write_text('{"format": "something else"}')
    open_and_wait(window, rel.new)
    with qtbot.waitSignal(window.job_ended, timeout=30_000):
        assert window.compare_with(bad)
    assert window.base is None and window.release_diff is None
    dialog = window.error_dialog
    assert dialog is not None
    assert dialog.windowTitle() == "Compare failed"
    assert "have.json" in dialog.informativeText() and "not a regpack inventory" in dialog.informativeText()
