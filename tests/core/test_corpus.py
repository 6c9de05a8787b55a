"""Received bundles that are broken or hostile: regpack names what is wrong and writes nothing.

Each case of ``tests/core/corpus.py`` is run through the real command line, as a user runs it:
``regpack verify`` must name the problem (finding code, message words, the file), and ``inspect``, ``pack`` and
``unpack`` must refuse with one ``regpack: error:`` line (no traceback), exit 1, leave no destination and no
``*.partial-*`` folder, and leave the received bundle exactly as it was.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.core import corpus
from tests.core.corpus import CASES, Case, Run

ROOT = Path(__file__).resolve().parents[2]

AS_ROOT = os.geteuid() == 0

# Cases where core does not (yet) behave as a user needs, marked strict xfail with a reason saying what is
# wrong; none at the moment.
XFAIL_VERIFY: dict[str, str] = {}
XFAIL_COMMANDS: dict[str, str] = {}


def _params(xfails: dict[str, str]) -> list[object]:
    return [
        pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=xfails[c.id])] if c.id in xfails else [])
        for c in CASES
    ]


class Workspace:
    """Where one case's bundle and outputs live; runs the CLI as nobody for permission cases when root."""

    def __init__(self, case: Case, tmp_path: Path) -> None:
        self.case = case
        self.unprivileged = case.unprivileged and AS_ROOT
        self.work = corpus.shared_work_dir() if self.unprivileged else tmp_path
        self.root = case.make(self.work)
        if self.unprivileged:
            corpus.give_to_nobody(self.work)  # nobody may create the destinations beside the bundle
        self.before = corpus.listing(self.root)

    def run(self, *args: str | Path) -> Run:
        return self.runs([list(args)])[0]

    def runs(self, commands: list[list[str | Path]]) -> list[Run]:
        if self.unprivileged:
            return [corpus.run_cli_as_nobody(*c) for c in commands]
        return corpus.run_many(commands)

    def cleanup(self) -> None:
        if self.unprivileged:
            corpus.make_removable(self.work)
            shutil.rmtree(self.work, ignore_errors=True)


@pytest.fixture
def workspace(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    case: Case = request.param
    ws = Workspace(case, tmp_path)
    try:
        yield ws
    finally:
        ws.cleanup()


def _explain(case: Case, run: Run) -> str:
    return f"case {case.id}: {run}"


def _matching(case: Case, found: list[dict[str, object]]) -> list[dict[str, object]]:
    def fits(f: dict[str, object]) -> bool:
        message = str(f["message"]).lower()
        return (
            f["severity"] == "error"
            and f["code"] in case.codes
            and all(w.lower() in message for w in case.words)
            and case.file in str(f["path"] or "")
        )

    return [f for f in found if fits(f)]


def test_corpus_is_big_and_named() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) >= 25
    assert len(set(ids)) == len(ids)
    assert {c.layout for c in CASES} == {"skopeo-dir", "registry", "oci", "archive"}
    assert all(c.why for c in CASES if not c.is_error), "every accepted case says why it is not an error"


@pytest.mark.parametrize("workspace", _params(XFAIL_VERIFY), indirect=True)
def test_verify_names_the_problem(workspace: Workspace) -> None:
    case = workspace.case
    as_json, as_text = workspace.runs([["verify", "--json", workspace.root], ["verify", workspace.root]])
    for run in (as_json, as_text):
        assert "Traceback" not in run.stderr + run.stdout, _explain(case, run)
    try:
        report = json.loads(as_json.stdout)
    except ValueError:
        pytest.fail(f"verify --json printed no report: {_explain(case, as_json)}")
    found = corpus.findings(report)
    if not case.is_error:
        assert as_json.code == 0, _explain(case, as_json)
        assert as_text.code == 0, _explain(case, as_text)
        assert report["ok"] is True
        assert [f for f in found if f["severity"] == "error"] == [], case.why
        return
    assert as_json.code == 1, _explain(case, as_json)
    assert report["ok"] is False
    assert _matching(case, found), (
        f"case {case.id}: expected an error finding with code in {sorted(case.codes)}, words {case.words} "
        f"and path containing {case.file!r}; got {json.dumps(found, indent=1)}"
    )
    assert as_text.code == 1, _explain(case, as_text)
    assert case.file in as_text.stdout, _explain(case, as_text)
    assert corpus.listing(workspace.root) == workspace.before, "verify changed the bundle"


def _assert_refused(case: Case, run: Run, dest: Path | None, fragment: str) -> None:
    assert run.code == 1, _explain(case, run)
    assert "Traceback" not in run.stderr, _explain(case, run)
    lines = run.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("regpack: error: "), _explain(case, run)
    assert fragment in run.stderr, f"the error should name {fragment!r}: {_explain(case, run)}"
    if dest is not None:
        assert not os.path.lexists(dest), f"{dest} was written: {_explain(case, run)}"
        assert corpus.partials(dest) == [], f"staging left behind: {_explain(case, run)}"


def _assert_output_verifies(case: Case, run: Run, dest: Path) -> None:
    assert run.code == 0, _explain(case, run)
    check = corpus.run_cli("verify", "--json", dest)
    assert check.code == 0, f"case {case.id}: output does not verify: {check}"


@pytest.mark.parametrize("workspace", _params(XFAIL_COMMANDS), indirect=True)
def test_commands_refuse_and_write_nothing(workspace: Workspace) -> None:
    case = workspace.case
    packed, unpacked = workspace.work / "packed", workspace.work / "unpacked"
    inspect, pack, unpack = workspace.runs(
        [
            ["inspect", workspace.root],
            ["pack", workspace.root, "-o", packed],
            ["unpack", workspace.root, "-o", unpacked],
        ]
    )
    fragment = case.stderr or case.file
    if not case.is_error:
        assert inspect.code == 0, _explain(case, inspect)
        _assert_output_verifies(case, pack, packed)
        _assert_output_verifies(case, unpack, unpacked)
    else:
        if case.deep:
            # inspect reads manifests and sizes, never blob bytes: listing the images is right here.
            assert inspect.code == 0, _explain(case, inspect)
        else:
            _assert_refused(case, inspect, None, fragment)
        if case.carried:
            # Plain pack/unpack link or copy blobs without reading them (that is what makes them cost no
            # I/O), so bad bytes may travel unchanged: then the output's verify names them, and the same job
            # with --verify refuses and writes nothing. (pack keeps one copy of a blob that several skopeo
            # folders hold; when it happens to keep a good copy its output is right, and --verify agrees.)
            checked_pack, checked_unpack = workspace.work / "packed-v", workspace.work / "unpacked-v"
            vpack, vunpack = workspace.runs(
                [
                    ["pack", "--verify", workspace.root, "-o", checked_pack],
                    ["unpack", "--verify", workspace.root, "-o", checked_unpack],
                ]
            )
            carried_somewhere = False
            for run, dest, checked_run, checked_dest in (
                (pack, packed, vpack, checked_pack),
                (unpack, unpacked, vunpack, checked_unpack),
            ):
                assert run.code == 0, _explain(case, run)
                check = corpus.run_cli("verify", "--json", dest)
                if check.code == 0:
                    _assert_output_verifies(case, checked_run, checked_dest)
                    continue
                carried_somewhere = True
                assert check.code == 1, f"case {case.id}: {check}"
                assert any(f["code"] in case.codes for f in corpus.findings(json.loads(check.stdout))), str(check)
                _assert_refused(case, checked_run, checked_dest, "verification")
            assert carried_somewhere, f"case {case.id}: neither output holds the bad bytes: is the case still bad?"
        else:
            _assert_refused(case, pack, packed, fragment)
            _assert_refused(case, unpack, unpacked, fragment)
    assert corpus.listing(workspace.root) == workspace.before, "a command changed the received bundle"
