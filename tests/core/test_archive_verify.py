"""verify of an archive: one sequential read whose buffers feed the blob hashes and the sidecar's part hashes;
every bad blob, part and read failure named; cancel stops the reading threads."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

import regpack.layouts.archive as reader
from regpack import layouts
from regpack.errors import Cancelled
from regpack.jobs import pack
from regpack.progress import Progress
from regpack.verify import verify, verify_bundle
from tests.core.conftest import write_dir_image

# Layer sizes that are not multiples of the small buffers the tests below read with: members start and end
# anywhere inside a buffer, and the bigger ones span several.
SIZES = (1, 511, 4095, 4097, 12345, 40000, 70001)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    root = tmp_path / "bundle"
    for i, size in enumerate(SIZES):
        write_dir_image(root / f"img{i}:1", f"img{i}", [os.urandom(size), os.urandom(SIZES[-1 - i])])
    return root


@pytest.fixture
def small_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Buffers of 4 KiB, two of them: every buffer is used again many times within one member."""
    monkeypatch.setattr(reader, "CHUNK", 4096)
    monkeypatch.setattr(reader, "READ_AHEAD", 2)


def reading_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("regpack-archive-")]


@pytest.mark.parametrize("name", ["r.tar", "r.tar.zst"])
@pytest.mark.usefixtures("small_buffers")
def test_every_blob_and_part_hashes_right_through_reused_buffers(bundle: Path, tmp_path: Path, name: str) -> None:
    pack(bundle, tmp_path / name, split=16384)
    report = verify(tmp_path / name)
    assert report.ok, report.findings
    assert report.files_hashed == 2 * len(SIZES) + len(SIZES)  # layers and configs
    assert not reading_threads()


@pytest.mark.usefixtures("small_buffers")
def test_a_flipped_byte_is_named_by_blob_and_part(bundle: Path, tmp_path: Path) -> None:
    pack(bundle, tmp_path / "r.tar", split=16384)
    parts = sorted(tmp_path.glob("r.tar.0*"))
    big = next(layer for layer in (bundle / "img6:1").iterdir() if layer.stat().st_size == SIZES[-1])
    data = big.read_bytes()
    hex_ = hashlib.sha256(data).hexdigest()
    # a byte well inside the layer, on a buffer boundary of its part
    probe = data[40000:40064]
    [(part, at)] = [(p, p.read_bytes().find(probe)) for p in parts if probe in p.read_bytes()]
    at = at - at % 4096
    raw = bytearray(part.read_bytes())
    raw[at] ^= 0xFF
    part.write_bytes(bytes(raw))
    report = verify(tmp_path / "r.tar")
    findings = {(f.code, f.image) for f in report.errors}
    assert findings == {("digest-mismatch", "img6:1"), ("sidecar", None)}
    [blob] = [f for f in report.errors if f.code == "digest-mismatch"]
    assert blob.where == f"{tmp_path / 'r.tar'}:docker/registry/v2/blobs/sha256/{hex_[:2]}/{hex_}/data"
    [side] = [f for f in report.errors if f.code == "sidecar"]
    assert side.reason.startswith(f"{part.name} hashes to ")


def counted_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes read from the archive's parts (every read goes through ``_read_into``), as a one-item list."""
    read = [0]
    real_read = reader._read_into

    def counting(file: Any, view: memoryview) -> int:
        n = real_read(file, view)
        read[0] += n
        return n

    monkeypatch.setattr(reader, "_read_into", counting)
    return read


@pytest.mark.parametrize("name", ["r.tar", "r.tar.zst"])
@pytest.mark.parametrize("sidecar", [True, False], ids=["sidecar", "no-sidecar"])
def test_verify_reads_the_archive_once(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, sidecar: bool
) -> None:
    pack(bundle, tmp_path / name)
    if not sidecar:
        (tmp_path / f"{name}.sha256").unlink()
    read = counted_reads(monkeypatch)
    report = verify(tmp_path / name)
    assert report.ok, report.findings
    assert report.files_hashed == 3 * len(SIZES)
    # indexing, every blob and the sidecar's part hashes from one read of each byte: no seek past a layer
    # first and a second pass after
    assert read[0] == (tmp_path / name).stat().st_size
    assert not reading_threads()


def test_a_bundle_read_without_hashing_is_verified_in_one_more_read(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pack(bundle, tmp_path / "r.tar")
    read_bundle = layouts.read(tmp_path / "r.tar")
    read = counted_reads(monkeypatch)
    assert verify_bundle(read_bundle).ok
    assert read[0] == (tmp_path / "r.tar").stat().st_size  # blobs and sidecar from the same read


@pytest.mark.usefixtures("small_buffers")
def test_one_pass_progress_counts_the_archive_bytes(bundle: Path, tmp_path: Path) -> None:
    pack(bundle, tmp_path / "r.tar.zst")
    size = (tmp_path / "r.tar.zst").stat().st_size
    seen: list[Progress] = []
    assert verify(tmp_path / "r.tar.zst", progress=seen.append).ok
    assert seen and {p.message for p in seen} == {"verifying"}
    assert {p.total_bytes for p in seen} == {size}
    done = [p.done_bytes for p in seen]
    assert done == sorted(done) and done[-1] == size


@pytest.mark.parametrize("name", ["r.tar", "r.tar.zst"])
def test_one_pass_refuses_an_archive_cut_inside_a_layer(bundle: Path, tmp_path: Path, name: str) -> None:
    pack(bundle, tmp_path / name)
    size = (tmp_path / name).stat().st_size
    os.truncate(tmp_path / name, size * 3 // 4)
    report = verify(tmp_path / name)
    [finding] = report.errors
    assert finding.code == "truncated" and finding.where == str(tmp_path / name)
    assert not reading_threads()


def test_a_part_gone_after_listing_is_named(bundle: Path, tmp_path: Path) -> None:
    pack(bundle, tmp_path / "r.tar", split=16384)
    read_bundle = layouts.read(tmp_path / "r.tar")
    gone = tmp_path / "r.tar.001"
    gone.unlink()
    report = verify_bundle(read_bundle)
    [finding] = report.errors
    assert finding.code == "unreadable" and finding.where == str(gone)
    assert "cannot read the archive" in finding.reason and "No such file" in finding.reason
    assert not reading_threads()


@pytest.mark.parametrize("sidecar", [True, False], ids=["sidecar", "no-sidecar"])
def test_an_archive_cut_after_listing_is_refused(bundle: Path, tmp_path: Path, sidecar: bool) -> None:
    pack(bundle, tmp_path / "r.tar")
    if not sidecar:
        (tmp_path / "r.tar.sha256").unlink()
    read_bundle = layouts.read(tmp_path / "r.tar")
    size = (tmp_path / "r.tar").stat().st_size
    os.truncate(tmp_path / "r.tar", size // 2)
    report = verify_bundle(read_bundle)
    assert [f.code for f in report.errors] == ["truncated"]
    assert not reading_threads()


@pytest.mark.parametrize("name", ["r.tar", "r.tar.zst"])
@pytest.mark.usefixtures("small_buffers")
def test_cancel_stops_the_reading_threads(bundle: Path, tmp_path: Path, name: str) -> None:
    pack(bundle, tmp_path / name)
    cancel = threading.Event()
    seen: list[Progress] = []

    def progress(p: Progress) -> None:
        seen.append(p)
        cancel.set()

    with pytest.raises(Cancelled):
        verify(tmp_path / name, progress=progress, cancel=cancel)
    assert seen and not reading_threads()


def oci_layout_with_a_sha512_layer(root: Path, layer: bytes) -> str:
    """An OCI layout whose layer is named by its sha512 (as ``umoci``/``skopeo`` may be told to), returning it."""
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    hex512 = hashlib.sha512(layer).hexdigest()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "size": len(config),
                "digest": f"sha256:{hashlib.sha256(config).hexdigest()}",
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "size": len(layer),
                    "digest": f"sha512:{hex512}",
                }
            ],
        }
    ).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "size": len(manifest),
                "digest": f"sha256:{hashlib.sha256(manifest).hexdigest()}",
                "annotations": {"org.opencontainers.image.ref.name": "1"},
            }
        ],
    }
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "blobs" / "sha512").mkdir()
    for data in (config, manifest):
        (root / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()).write_bytes(data)
    (root / "blobs" / "sha512" / hex512).write_bytes(layer)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (root / "index.json").write_text(json.dumps(index))
    return hex512


@pytest.mark.parametrize("flip", [False, True], ids=["sound", "flipped"])
def test_a_sha512_blob_is_hashed_by_one_more_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flip: bool) -> None:
    layer = os.urandom(200_000)  # bigger than what the index keeps in memory
    hex512 = oci_layout_with_a_sha512_layer(tmp_path / "oci", layer)
    if flip:
        path = tmp_path / "oci" / "blobs" / "sha512" / hex512
        path.write_bytes(bytes([layer[0] ^ 0xFF]) + layer[1:])  # always a different first byte
    archive = tmp_path / "o.tar"
    subprocess.run(["tar", "-cf", archive, "-C", tmp_path / "oci", "."], check=True)
    read = counted_reads(monkeypatch)
    report = verify(archive)
    size = archive.stat().st_size
    assert size + len(layer) <= read[0] <= 2 * size  # the one pass, then the sha512 blob's own
    if not flip:
        assert report.ok, report.findings
        assert report.files_hashed == 2  # config and layer
    else:
        [finding] = report.errors
        assert finding.code == "digest-mismatch" and finding.image is not None
        assert finding.where == f"{archive}:blobs/sha512/{hex512}"
        assert f"expected sha512:{hex512}" in finding.reason
