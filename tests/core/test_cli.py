from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.core.conftest import BASE, sha

ROOT = Path(__file__).resolve().parents[2]


def regpack(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "regpack", *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_inspect_json_counts_bytes_as_dirs_and_packed(dir_bundle: Path) -> None:
    run = regpack("inspect", dir_bundle, "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    files = [p for p in dir_bundle.rglob("*") if p.is_file() and p.name != "version"]
    assert report["dir_bytes"] == sum(p.stat().st_size for p in files)
    distinct = {p.read_bytes() for p in files}
    assert report["packed_bytes"] == sum(len(b) for b in distinct)
    assert report["saved_bytes"] == report["dir_bytes"] - report["packed_bytes"]
    alpine = next(i for i in report["images"] if i["name"] == "alpine:3.19")
    assert alpine["shared_bytes"] >= len(BASE) and alpine["layers"] == 2


def test_pack_unpack_verify_exit_codes(dir_bundle: Path, tmp_path: Path) -> None:
    assert regpack("pack", dir_bundle, "-o", tmp_path / "p", "--verify").returncode == 0
    assert regpack("verify", tmp_path / "p").returncode == 0
    assert regpack("unpack", tmp_path / "p", "-o", tmp_path / "u", "--copy").returncode == 0
    again = regpack("pack", dir_bundle, "-o", tmp_path / "p")
    assert again.returncode == 1 and "not empty" in again.stderr and "Traceback" not in again.stderr
    assert regpack("pack", dir_bundle).returncode == 2  # -o is required
    assert regpack("frobnicate").returncode == 2


def test_verify_names_the_corrupt_blob_and_its_image(dir_bundle: Path, tmp_path: Path) -> None:
    regpack("pack", dir_bundle, "-o", tmp_path / "p", "--copy")
    data = tmp_path / "p" / "docker" / "registry" / "v2" / "blobs" / "sha256" / sha(BASE)[:2] / sha(BASE) / "data"
    data.write_bytes(data.read_bytes()[:-1] + b"X")  # same size, different bytes: only hashing can tell
    fast = regpack("verify", tmp_path / "p", "--fast")
    assert fast.returncode == 0
    run = regpack("verify", tmp_path / "p", "--json")
    assert run.returncode == 1
    report = json.loads(run.stdout)
    bad = {i["name"] for i in report["images"] if not i["ok"]}
    assert bad == {"a/b/c:1", "alpine:3.19", "calico/node:latest", "calico/node:v3.15.1", "multi:2"}
    finding = report["images"][0]["findings"][0]
    assert finding["code"] == "digest-mismatch" and sha(BASE) in finding["path"]


@pytest.mark.parametrize("layout", ["dir", "packed"])
def test_missing_blob_is_refused_naming_image_and_file(dir_bundle: Path, tmp_path: Path, layout: str) -> None:
    src = dir_bundle
    victim = dir_bundle / "calico" / "node:v3.15.1" / sha(b"node" * 700)
    if layout == "packed":
        regpack("pack", dir_bundle, "-o", tmp_path / "p", "--copy")
        src = tmp_path / "p"
        victim = src / "docker/registry/v2/blobs/sha256" / sha(b"node" * 700)[:2] / sha(b"node" * 700) / "data"
    victim.unlink()
    run = regpack("unpack" if layout == "packed" else "pack", src, "-o", tmp_path / "out")
    assert run.returncode == 1
    assert "calico/node:" in run.stderr and str(victim) in run.stderr and "missing" in run.stderr
    assert not (tmp_path / "out").exists()


def test_core_never_imports_qt() -> None:
    code = (
        "import sys, pkgutil, importlib, regpack\n"
        "for m in pkgutil.walk_packages(regpack.__path__, 'regpack.'):\n"
        "    if not m.name.startswith(('regpack.gui', 'regpack.resources', 'regpack.__main__')):\n"
        "        importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m.startswith(('PySide6', 'regpack.gui', 'shiboken'))]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
