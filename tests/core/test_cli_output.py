"""``regpack`` as a pipeline runs it: progress lines in a log, JSON summaries on stdout, a quiet verify."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.core.conftest import BASE, sha, write_dir_image

ROOT = Path(__file__).resolve().parents[2]
# Verifying an archive counts the archive's bytes read (its files are known only once it is read).
# Reading counts the images read so far (there is no total before the end).
PLAIN = re.compile(
    r"^regpack: ((packing|unpacking|verifying)(: creating folders)? · \d+\.\d% · .* of \d+ files"
    r"|verifying · \d+\.\d% · \S+ \S+ of \S+ \S+"
    r"|reading · [\d,]+ images?$)"
)


def regpack(*args: str | Path, interval: str | None = None) -> subprocess.CompletedProcess[str]:
    """stdout and stderr are pipes, as in CI."""
    env = {k: v for k, v in os.environ.items() if k != "REGPACK_PROGRESS_INTERVAL"}
    if interval is not None:
        env["REGPACK_PROGRESS_INTERVAL"] = interval
    return subprocess.run(
        [sys.executable, "-m", "regpack", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


def blob_files(storage: Path) -> list[Path]:
    return [p for p in (storage / "docker/registry/v2/blobs").rglob("data") if p.is_file()]


@pytest.mark.parametrize("output", ["p", "p.tar"])
def test_plain_progress_lines_on_a_pipe(dir_bundle: Path, tmp_path: Path, output: str) -> None:
    run = regpack("pack", dir_bundle, "-o", tmp_path / output, "--verify", "--progress", "plain", interval="0")
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    assert lines and all(PLAIN.match(line) for line in lines), run.stderr
    assert "\r" not in run.stderr
    regpack("pack", dir_bundle, "-o", tmp_path / "folder", "-q")
    files = sum(1 for p in (tmp_path / "folder").rglob("*") if p.is_file())
    assert "regpack: packing · 100.0% · " in run.stderr and f" of {files} files" in run.stderr
    assert lines[-1].startswith("regpack: verifying · 100.0% · "), run.stderr  # writing ends before the check
    assert lines[0] == "regpack: reading · 1 image" and "regpack: reading · 5 images" in lines  # the read first
    assert run.stdout.startswith("packed 5 images into ")  # the summary stays on stdout
    again = regpack("verify", tmp_path / "folder", "--progress", "plain", interval="0")  # registry storage
    assert again.returncode == 0, again.stderr
    assert again.stderr.splitlines()[:1] == ["regpack: reading · 1 image"], again.stderr
    assert "regpack: reading · 5 images" in again.stderr.splitlines()


def test_auto_on_a_pipe_is_plain(dir_bundle: Path, tmp_path: Path) -> None:
    # the default interval: a tiny job still shows each phase's start and end
    run = regpack("unpack", dir_bundle, "-o", tmp_path / "u")
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    assert lines and all(PLAIN.match(line) for line in lines), run.stderr
    assert lines[-1].startswith("regpack: unpacking · 100.0% · ")


def test_no_progress_prints_nothing_on_stderr(dir_bundle: Path, tmp_path: Path) -> None:
    for i, quiet in enumerate((["--progress", "none"], ["-q"], ["--quiet", "--progress", "plain"])):
        run = regpack("pack", dir_bundle, "-o", tmp_path / f"p{i}", "--verify", *quiet, interval="0")
        assert (run.returncode, run.stderr) == (0, ""), quiet
        assert run.stdout.startswith("packed 5 images")
    run = regpack("verify", tmp_path / "p0", "--progress", "none", interval="0")
    assert (run.returncode, run.stderr) == (0, "")


def test_pack_json_counts_what_was_linked_copied_and_verified(dir_bundle: Path, tmp_path: Path) -> None:
    run = regpack("pack", dir_bundle, "-o", tmp_path / "p", "--json", "--exclude", "calico/*")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    blobs = blob_files(tmp_path / "p")
    linked = [p for p in blobs if p.stat().st_nlink > 1]
    assert linked, "hard links expected on one filesystem"
    assert summary["format"] == "regpack-job/1" and summary["command"] == "pack"
    assert summary["images"] == 3 and summary["dest"] == str(tmp_path / "p")
    assert summary["files"] == sum(1 for p in (tmp_path / "p").rglob("*") if p.is_file())
    assert (summary["blobs_linked"], summary["blobs_copied"]) == (len(linked), len(blobs) - len(linked))
    assert summary["bytes_linked"] == sum(p.stat().st_size for p in linked)
    assert summary["verified_files"] == 0 and summary["patch"] is None and summary["moved_tags"] == []
    assert summary["left_out"] == [
        {"name": "calico/node:latest", "reason": "excluded", "detail": ""},
        {"name": "calico/node:v3.15.1", "reason": "excluded", "detail": ""},
    ]
    assert summary["warnings"] == [] and summary["seconds"] >= 0

    copied = regpack("pack", dir_bundle, "-o", tmp_path / "c", "--json", "--copy", "--verify", "-q")
    assert (copied.returncode, copied.stderr) == (0, ""), copied.stderr
    again = json.loads(copied.stdout)
    blobs = blob_files(tmp_path / "c")
    assert (again["images"], again["blobs_linked"], again["blobs_copied"]) == (5, 0, len(blobs))
    assert again["bytes_linked"] == 0 and again["bytes_copied"] == sum(p.stat().st_size for p in blobs)
    # every blob but the six manifests (alpine, node, a/b/c, the multi list and its two children) is hashed
    assert again["verified_files"] == len(blobs) - 6
    assert again["verified_bytes"] > 0


def test_unpack_json_and_a_merge_that_moves_tags(dir_bundle: Path, tmp_path: Path) -> None:
    regpack("pack", dir_bundle, "-o", tmp_path / "p", "-q")
    run = regpack("unpack", tmp_path / "p", "-o", tmp_path / "u", "--json", "--only", "alpine:*", "-q")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert (summary["command"], summary["images"]) == ("unpack", 1)
    assert summary["files"] == sum(1 for p in (tmp_path / "u").rglob("*") if p.is_file())
    assert {x["reason"] for x in summary["left_out"]} == {"not selected"} and len(summary["left_out"]) == 4

    # the same tag, another image: merged with --move-tags, the moved tag is in the summary
    other = tmp_path / "other"
    (other / "alpine:3.19").mkdir(parents=True)
    for f in (tmp_path / "u" / "alpine:3.19").iterdir():
        (other / "alpine:3.19" / f.name).write_bytes(f.read_bytes())
    manifest = json.loads((other / "alpine:3.19" / "manifest.json").read_bytes())
    manifest["annotations"] = {"rebuilt": "yes"}
    (other / "alpine:3.19" / "manifest.json").write_text(json.dumps(manifest))
    merged = regpack("pack", other, "-o", tmp_path / "p", "--merge", "--move-tags", "--json", "-q")
    assert merged.returncode == 0, merged.stderr
    result = json.loads(merged.stdout)
    assert result["moved_tags"] == ["alpine:3.19"] and result["files_already_present"] > 0


def test_json_failure_goes_to_stderr_with_status_1(dir_bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_text("x")
    run = regpack("pack", dir_bundle, "-o", tmp_path / "full", "--json")
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.splitlines()[-1].startswith("regpack: error: ") and "not empty" in run.stderr


def test_verify_quiet_is_silent_on_a_good_bundle_and_names_the_bad_blob(dir_bundle: Path, tmp_path: Path) -> None:
    regpack("pack", dir_bundle, "-o", tmp_path / "p", "--copy", "-q")
    good = regpack("verify", tmp_path / "p", "--quiet")
    assert (good.returncode, good.stdout, good.stderr) == (0, "", "")

    data = tmp_path / "p/docker/registry/v2/blobs/sha256" / sha(BASE)[:2] / sha(BASE) / "data"
    data.write_bytes(data.read_bytes()[:-1] + b"X")  # same size: only hashing finds it
    bad = regpack("verify", tmp_path / "p", "-q")
    assert bad.returncode == 1 and bad.stderr == ""
    lines = bad.stdout.splitlines()
    assert sha(BASE) in bad.stdout and "digest-mismatch" in bad.stdout
    headings = [line for line in lines if not line.startswith(" ")]
    assert headings == [
        "FAILED  a/b/c:1",
        "FAILED  alpine:3.19",
        "FAILED  calico/node:latest",
        "FAILED  calico/node:v3.15.1",
        "FAILED  multi:2",
    ], bad.stdout  # only the problems: no "ok" line, no summary
    loud = regpack("verify", tmp_path / "p")
    assert loud.returncode == 1 and "error(s)" in loud.stdout


def test_pack_json_of_a_patch_and_of_applying_it(dir_bundle: Path, tmp_path: Path) -> None:
    regpack("pack", dir_bundle, "-o", tmp_path / "old", "-q")
    write_dir_image(dir_bundle / "new:1", "new", [BASE, b"new layer" * 50])
    made = regpack("pack", dir_bundle, "--base", tmp_path / "old", "-o", tmp_path / "patch", "--json", "-q")
    assert made.returncode == 0, made.stderr
    summary = json.loads(made.stdout)
    description = json.loads((tmp_path / "patch" / "regpack-patch.json").read_bytes())
    assert summary["patch"] == {
        "role": "made",
        "blobs_left_to_base": len(description["base_blobs"]),
        "description": "regpack-patch.json",
    }
    assert summary["patch"]["blobs_left_to_base"] > 0
    applied = regpack("unpack", tmp_path / "patch", "--base", tmp_path / "old", "-o", tmp_path / "u", "--json", "-q")
    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout)["patch"] == {"role": "applied", "blobs_from_base": len(description["base_blobs"])}


def test_pack_json_of_an_archive(dir_bundle: Path, tmp_path: Path) -> None:
    run = regpack("pack", dir_bundle, "-o", tmp_path / "r.tar", "--verify", "--json", "-q")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    regpack("pack", dir_bundle, "-o", tmp_path / "folder", "-q")
    blobs = blob_files(tmp_path / "folder")
    assert summary["archive"]["parts"] == [str(tmp_path / "r.tar")]
    assert summary["archive"]["archive_bytes"] == (tmp_path / "r.tar").stat().st_size
    assert summary["archive"]["sidecar"] is not None
    assert (summary["blobs_copied"], summary["blobs_linked"]) == (len(blobs), 0)
    assert summary["verified_files"] == len(blobs) - 6  # the manifests aside, as for a folder
    to_stdout = regpack("pack", dir_bundle, "-o", "-", "--json")
    assert to_stdout.returncode == 2 and to_stdout.stdout == "" and "-o -" in to_stdout.stderr


def test_a_gzip_archive_is_read_and_never_written(dir_bundle: Path, tmp_path: Path) -> None:
    """`tar -czf` is how many bundles travel: read like .tar.zst; written, never (.tar.zst is offered)."""
    regpack("pack", dir_bundle, "-o", tmp_path / "storage", "-q")
    subprocess.run(["tar", "-czf", tmp_path / "storage.tgz", "-C", tmp_path / "storage", "."], check=True)
    shown = regpack("inspect", tmp_path / "storage.tgz", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["archive"]["compression"] == "gzip"
    checked = regpack("verify", tmp_path / "storage.tgz")
    assert checked.returncode == 0 and "5 images" in checked.stdout, checked.stdout + checked.stderr
    refused = regpack("pack", dir_bundle, "-o", tmp_path / "again.tar.gz")
    assert refused.returncode == 1 and ".tar.zst" in refused.stderr and "Traceback" not in refused.stderr
    assert not list(tmp_path.glob("again*"))
