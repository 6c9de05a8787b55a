"""A signed schema1 manifest is packed as its unsigned payload (what the registry stores and signs when serving),
and registry storage holding the signed bytes is reported."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from regpack.errors import Code
from regpack.jobs import pack, unpack
from regpack.manifest import schema1_unsigned
from regpack.verify import verify

LAYER = b"a layer, as it happens not a tar"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def signed_schema1() -> tuple[bytes, bytes]:
    """(payload, signed JWS) the way libtrust lays them out: signatures inserted before the closing brace."""
    blob_sum = "sha256:" + hashlib.sha256(LAYER).hexdigest()
    doc = {"schemaVersion": 1, "name": "old/app", "tag": "1", "architecture": "amd64",
           "fsLayers": [{"blobSum": blob_sum}], "history": [{"v1Compatibility": "{\"id\":\"x\"}"}]}  # fmt: skip
    payload = json.dumps(doc, separators=(",", ":")).encode()
    cut = len(payload) - 1
    protected = b64(json.dumps({"formatLength": cut, "formatTail": b64(payload[cut:])}).encode())
    signature = {"header": {"alg": "ES256"}, "signature": "c2ln", "protected": protected}
    signed = payload[:cut] + b',"signatures":' + json.dumps([signature]).encode() + payload[cut:]
    return payload, signed


def write_dir(root: Path, manifest: bytes) -> Path:
    folder = root / "old" / "app:1"
    folder.mkdir(parents=True)
    (folder / "version").write_bytes(b"Directory Transport Version: 1.1\n")
    (folder / "manifest.json").write_bytes(manifest)
    (folder / hashlib.sha256(LAYER).hexdigest()).write_bytes(LAYER)
    return root


def manifest_data(storage: Path, payload: bytes) -> Path:
    hex_ = hashlib.sha256(payload).hexdigest()
    return storage / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"


def test_signed_schema1_is_stored_as_its_payload_and_unpacks_to_it(tmp_path: Path) -> None:
    payload, signed = signed_schema1()
    src = write_dir(tmp_path / "src", signed)
    storage = tmp_path / "storage"
    pack(src, storage, verify=True)
    assert manifest_data(storage, payload).read_bytes() == payload
    tag = storage / "docker/registry/v2/repositories/old/app/_manifests/tags/1/current/link"
    assert tag.read_text() == "sha256:" + hashlib.sha256(payload).hexdigest()
    assert verify(storage).ok
    out = tmp_path / "out"
    unpack(storage, out, verify=True)
    written = (out / "old" / "app:1" / "manifest.json").read_bytes()
    assert b'"signatures"' in written and schema1_unsigned(written) == payload  # signed afresh, as served


def test_storage_holding_the_signed_bytes_is_reported(tmp_path: Path) -> None:
    payload, signed = signed_schema1()
    storage = tmp_path / "storage"
    pack(write_dir(tmp_path / "src", signed), storage)
    data = manifest_data(storage, payload)
    data.unlink()
    data.write_bytes(signed)
    report = verify(storage)
    assert not report.ok
    assert [(f.code, f.image, f.path) for f in report.errors] == [(Code.SCHEMA1_SIGNED, "old/app:1", data)]
