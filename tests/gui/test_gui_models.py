"""Every item model passes Qt's model tester, and shows what core computed."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QModelIndex, Qt

from regpack.analysis import analyse
from regpack.errors import Code, Problem, Severity
from regpack.gui.models import (
    OBJECT_ROLE,
    SORT_ROLE,
    BlobTreeModel,
    ImageFilterProxy,
    ImageTableModel,
    LayersModel,
    VerifyModel,
    verdicts,
)
from regpack.gui.sizes import human_size
from regpack.gui.theme import status_colors
from regpack.layouts import read
from regpack.verify import Report


def _analysis(path: Path):
    bundle = read(path)
    assert not bundle.errors, bundle.problems
    return analyse(bundle)


def test_image_table_model_passes_modeltester(qtmodeltester, synthetic_bundle: Path) -> None:
    model = ImageTableModel()
    qtmodeltester.check(model)
    model.set_analysis(_analysis(synthetic_bundle))
    qtmodeltester.check(model)
    assert model.rowCount() == 40


def test_filter_proxy_passes_modeltester_and_filters(qtmodeltester, synthetic_bundle: Path) -> None:
    model = ImageTableModel()
    model.set_analysis(_analysis(synthetic_bundle))
    proxy = ImageFilterProxy()
    proxy.setSourceModel(model)
    proxy.sort(ImageTableModel.SIZE, Qt.SortOrder.DescendingOrder)
    qtmodeltester.check(proxy)
    sizes = [proxy.index(r, ImageTableModel.SIZE).data(SORT_ROLE) for r in range(proxy.rowCount())]
    assert sizes == sorted(sizes, reverse=True)
    proxy.set_search("team-a 1.1")
    names = [proxy.index(r, 0).data(OBJECT_ROLE).image.name for r in range(proxy.rowCount())]
    assert names and all(n.startswith("team-a/") and n.endswith(":1.1") for n in names)
    proxy.set_search("list arm64")
    assert proxy.rowCount() == 2  # every 20th image is a two-platform list
    qtmodeltester.check(proxy)


def test_blob_tree_passes_modeltester_in_both_groupings(qtmodeltester, synthetic_bundle: Path) -> None:
    analysis = _analysis(synthetic_bundle)
    model = BlobTreeModel()
    qtmodeltester.check(model)
    model.set_analysis(analysis)
    qtmodeltester.check(model)
    counts = [model.index(r, 0).data(OBJECT_ROLE).count for r in range(model.rowCount())]
    assert counts == sorted(counts, reverse=True) and counts[0] > 1  # most shared first
    first = model.index(0, 0)
    assert model.rowCount(first) == counts[0]
    assert model.index(0, BlobTreeModel.USED_BY).data() == f"{counts[0]} images"
    image = analysis.images[3].image
    model.set_highlight(image)
    rows = model.highlighted_rows()
    assert {model.index(r, 0).data(OBJECT_ROLE).blob.digest for r in rows} == {
        d for d in image.blob_digests() if analysis_role(analysis, d) == "layer"
    }
    model.set_mode(BlobTreeModel.BY_IMAGE)
    qtmodeltester.check(model)
    assert model.rowCount() == 40
    assert model.highlighted_rows() == [3]
    for row, stats in enumerate(analysis.images):  # each image expands to exactly its layers
        parent = model.index(row, 0)
        assert model.index(row, BlobTreeModel.USED_BY).data() == f"{stats.layers} layers"
        assert model.rowCount(parent) == stats.layers
        children = {model.index(r, 0, parent).data(OBJECT_ROLE).blob.digest for r in range(stats.layers)}
        assert children == {d.digest for m in stats.image.manifests for d in m.layers}


def analysis_role(analysis, digest) -> str:
    return next(u.blob.role.value for u in analysis.blobs if u.blob.digest == digest)


def test_layers_model_passes_modeltester(qtmodeltester, sample_bundle: Path) -> None:
    analysis = _analysis(sample_bundle)
    web = next(s.image for s in analysis.images if s.image.name == "demo/web:1.0")
    model = LayersModel()
    model.set_manifest(web.manifest, {u.blob.digest: u for u in analysis.blobs})
    qtmodeltester.check(model)
    assert model.rowCount() == 2
    assert model.index(0, LayersModel.USED_BY).data() == "4 images"  # the base layer: every sample image
    assert model.index(1, LayersModel.SIZE).data() == human_size(web.manifest.layers[1].size)


def _report(images: tuple[str, ...], *findings: Problem) -> Report:
    return Report(Path("/bundle"), "skopeo-dir", findings, images, 0, 0)


def test_verify_model_passes_modeltester(qtmodeltester) -> None:
    report = _report(
        ("a:1", "b:1"),
        Problem(Severity.ERROR, Code.DIGEST_MISMATCH, "hashes to sha256:00", Path("b:1/abc"), "b:1"),
        Problem(Severity.WARNING, Code.EMPTY, "stray folder"),
        Problem(Severity.WARNING, Code.BAD_LINK, "tag index link is missing", None, "c:1"),
    )
    model = VerifyModel()
    model.set_verdicts(verdicts(report))
    qtmodeltester.check(model)
    assert [model.index(r, 0).data() for r in range(model.rowCount())] == ["a:1", "b:1", "c:1", "(bundle)"]
    assert [model.verdict(r).severity for r in range(model.rowCount())] == [
        Severity.OK,
        Severity.ERROR,
        Severity.WARNING,
        Severity.WARNING,
    ]
    assert model.index(0, VerifyModel.STATUS).data() == "ok"
    assert model.index(1, VerifyModel.STATUS).data() == "digest mismatch"
    assert model.index(2, VerifyModel.STATUS).data() == "broken link"
    assert model.index(1, VerifyModel.DETAILS).data() == "hashes to sha256:00 — b:1/abc"
    assert model.index(1, 0).data(Qt.ItemDataRole.ToolTipRole) == "Error: b:1/abc: hashes to sha256:00"
    assert model.index(1, 0).data(Qt.ItemDataRole.BackgroundRole).color() == status_colors().error_background
    assert model.index(2, 0).data(Qt.ItemDataRole.BackgroundRole).color() == status_colors().warning_background
    assert model.index(0, 0).data(Qt.ItemDataRole.BackgroundRole) is None
    assert model.data(QModelIndex()) is None


def test_repository_problems_get_a_row_labelled_as_the_repository() -> None:
    image_problem = Problem(Severity.ERROR, Code.MISSING_LINK, "platform manifest has no revision link", None, "a:1")
    repo_problem = Problem(Severity.ERROR, Code.BAD_LINK, "link file is missing", Path("/s/link"), None, "a")
    bundle_problem = Problem(Severity.WARNING, Code.EMPTY, "stray folder")
    rows = verdicts(_report(("a:1",), image_problem, repo_problem, bundle_problem))
    assert [(r.image, r.severity, r.findings) for r in rows] == [
        ("a:1", Severity.ERROR, (image_problem,)),
        ("repository a", Severity.ERROR, (repo_problem,)),
        (None, Severity.WARNING, (bundle_problem,)),
    ]


def test_blob_tree_of_a_patch_marks_the_layers_its_base_holds(qtmodeltester, tmp_path: Path) -> None:
    from regpack.jobs import pack
    from tests.core.conftest import BASE, sha, write_dir_image

    write_dir_image(tmp_path / "old" / "app:1", "app", [BASE, b"one" * 100])
    write_dir_image(tmp_path / "new" / "app:2", "app", [BASE, b"two" * 100])
    pack(tmp_path / "new", tmp_path / "patch", base=tmp_path / "old")
    model = BlobTreeModel()
    model.set_analysis(_analysis(tmp_path / "patch"))
    qtmodeltester.check(model)
    names = {
        model.index(r, 0).data(OBJECT_ROLE).blob.digest.hex: model.index(r, 0).data() for r in range(model.rowCount())
    }
    assert names[sha(BASE)].endswith("(from the base)")
    assert names[sha(b"two" * 100)] == sha(b"two" * 100)[:12]
