"""Typed findings: status per image and the JSON report keep their words."""

from __future__ import annotations

from pathlib import Path

from regpack.errors import BundleError, Code, Problem, Severity
from regpack.verify import Report


def _report(images: tuple[str, ...], *findings: Problem) -> Report:
    return Report(Path("/bundle"), "skopeo-dir", findings, images, 0, 0)


def test_report_status_per_image_is_the_worst_severity() -> None:
    report = _report(
        ("a:1", "b:1"),
        Problem(Severity.WARNING, Code.BAD_LINK, "link", None, "a:1"),
        Problem(Severity.ERROR, Code.SIZE, "size", None, "a:1"),
        Problem(Severity.WARNING, Code.BAD_LINK, "link", None, "a:1"),
    )
    assert report.statuses() == {"a:1": Severity.ERROR, "b:1": Severity.OK}
    doc = report.to_json()
    assert [(i["name"], i["ok"]) for i in doc["images"]] == [("a:1", False), ("b:1", True)]
    assert doc["images"][0]["findings"][1] == {"severity": "error", "code": "size", "path": None, "message": "size"}
    assert (doc["errors"], doc["warnings"], doc["bundle_findings"]) == (1, 2, [])


def test_a_problem_names_image_file_and_reason() -> None:
    problem = Problem.of(BundleError("manifest is empty", Path("a/manifest.json"), "a:1", Code.BAD_MANIFEST))
    assert str(problem) == "error: image a:1: a/manifest.json: manifest is empty"
    assert problem.code.label == "bad manifest" and Severity.WARNING.label == "Warning"
    assert Severity.worst([]) is Severity.OK
    assert Severity.worst([Severity.WARNING, Severity.ERROR, Severity.WARNING]) is Severity.ERROR
