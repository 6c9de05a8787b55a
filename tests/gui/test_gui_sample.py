"""The shipped sample is exactly what tests/support/sample.py writes, and skopeo-shaped."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

from regpack.gui.assets import sample_bundle
from tests.support import sample as make_sample


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_shipped_sample_is_reproducible(tmp_path: Path) -> None:
    assert tree(make_sample.make_sample(tmp_path / "again")) == tree(sample_bundle())


def test_sample_layers_are_real_gzip_tars_matching_their_configs() -> None:
    web = sample_bundle() / "demo/web:1.0"
    assert (web / "version").read_bytes() == b"Directory Transport Version: 1.1\n"
    manifest = json.loads((web / "manifest.json").read_bytes())
    config = json.loads((web / manifest["config"]["digest"][7:]).read_bytes())
    assert config["os"] == "linux" and config["architecture"] == "amd64"
    for desc, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True):
        data = (web / desc["digest"][7:]).read_bytes()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == desc["digest"] and len(data) == desc["size"]
        assert data[4:8] == b"\0\0\0\0"  # gzip mtime 0
        plain = gzip.decompress(data)
        assert "sha256:" + hashlib.sha256(plain).hexdigest() == diff_id
        with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
            assert tar.getnames()
