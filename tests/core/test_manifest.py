from __future__ import annotations

import base64
import json

import pytest

from regpack.digest import Digest
from regpack.errors import BundleError
from regpack.manifest import MAX_MANIFEST_BYTES, Kind, parse_manifest
from tests.core.conftest import (
    DOCKER_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    config_for,
    descriptor,
    image_manifest,
    sha,
)


def test_schema2_references_config_and_layers_and_digest_is_of_exact_bytes() -> None:
    config, layers = config_for("x"), [b"one", b"two"]
    data = image_manifest(config, layers)
    m = parse_manifest(data)
    assert m.kind is Kind.SCHEMA2
    assert m.digest == Digest("sha256", sha(data))
    assert m.config is not None and m.config.digest.hex == sha(config)
    assert [d.digest.hex for d in m.layers] == [sha(x) for x in layers]
    # The same document re-serialized is another image: the digest follows the bytes, not the JSON value.
    assert parse_manifest(json.dumps(json.loads(data)).encode()).digest != m.digest


def test_oci_manifest_without_media_type_is_told_by_shape() -> None:
    data = json.dumps(
        {"schemaVersion": 2, "config": descriptor(b"{}", "application/vnd.oci.image.config.v1+json"), "layers": []}
    ).encode()
    assert parse_manifest(data).media_type == OCI_MANIFEST


def test_oci_index_with_subject_and_annotations_holding_digests_only_children_count() -> None:
    child = image_manifest(config_for("c"), [b"l"], OCI_MANIFEST)
    other = "sha256:" + "ab" * 32
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            descriptor(child, OCI_MANIFEST, platform={"os": "linux", "architecture": "arm64", "variant": "v8"})
        ],
        "subject": {"mediaType": OCI_MANIFEST, "digest": other, "size": 10},
        "annotations": {"org.opencontainers.image.base.digest": other},
    }
    m = parse_manifest(json.dumps(doc).encode())
    assert m.kind is Kind.OCI_INDEX
    assert [str(c.platform) for c in m.children] == ["linux/arm64/v8"]
    assert m.subject is not None and str(m.subject.digest) == other
    assert m.blobs == ()


def test_docker_list() -> None:
    child = image_manifest(config_for("c"), [b"l"])
    doc = {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [descriptor(child, "x")]}
    m = parse_manifest(json.dumps(doc).encode())
    assert m.kind is Kind.DOCKER_LIST and m.kind.is_list


def test_foreign_layer_is_marked() -> None:
    foreign = descriptor(b"win", "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", urls=["https://x/y"])
    doc = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": descriptor(b"{}", "c"),
        "layers": [foreign],
    }
    assert parse_manifest(json.dumps(doc).encode()).layers[0].foreign


def test_ordinary_layer_with_urls_is_foreign_and_without_is_not() -> None:
    gzip_layer = "application/vnd.oci.image.layer.v1.tar+gzip"
    doc = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor(b"{}", "c"),
        "layers": [descriptor(b"ext", gzip_layer, urls=["https://x/y"]), descriptor(b"own", gzip_layer)],
    }
    with_urls, plain = parse_manifest(json.dumps(doc).encode()).layers
    assert with_urls.foreign and with_urls.urls == ("https://x/y",)
    assert not plain.foreign


def test_schema1_signed_digest_covers_payload_without_signatures() -> None:
    payload = json.dumps(
        {"schemaVersion": 1, "name": "x", "tag": "1", "fsLayers": [{"blobSum": "sha256:" + "1" * 64}] * 2},
        indent=3,
    ).encode()
    # libtrust: the signed document is the payload's bytes up to its closing brace, signatures inserted there.
    cut = payload.rindex(b"\n}")
    tail = payload[cut:]
    protected = (
        base64.urlsafe_b64encode(
            json.dumps(
                {"formatLength": cut, "formatTail": base64.urlsafe_b64encode(tail).decode().rstrip("=")}
            ).encode()
        )
        .decode()
        .rstrip("=")
    )
    signed = (
        payload[:cut] + b',\n   "signatures": [{"protected": "' + protected.encode() + b'", "signature": "x"}]' + tail
    )
    m = parse_manifest(signed)
    assert m.kind is Kind.SCHEMA1
    assert m.digest == Digest("sha256", sha(payload))
    assert len(m.layers) == 1  # repeated blobSums are one blob


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"not json", "not valid JSON"),
        (b"[1,2]", "JSON object"),
        (b"", "empty"),
        (b'{"schemaVersion": 3}', "schemaVersion"),
        (b'{"schemaVersion": 2, "mediaType": "application/x-whatever"}', "unknown manifest mediaType"),
        (
            b'{"schemaVersion": 2, "mediaType": "' + OCI_MANIFEST.encode() + b'", "config": {}, "layers": []}',
            "no digest",
        ),
        (b'{"schemaVersion": 2, "config": {"digest": "sha256:abc", "size": 1}, "layers": []}', "malformed"),
        (b'{"schemaVersion": 2, "config": {"digest": "md5:abc", "size": 1}, "layers": []}', "unsupported digest"),
        (
            b'{"schemaVersion": 2, "config": {"digest": "sha256:' + b"a" * 64 + b'", "size": -1}, "layers": []}',
            "non-negative",
        ),
    ],
)
def test_bad_manifests_name_file_and_reason(data: bytes, words: str) -> None:
    with pytest.raises(BundleError) as info:
        parse_manifest(data, "img/manifest.json", "img:1")
    text = str(info.value)
    assert words in text and "img/manifest.json" in text and "img:1" in text


def test_oversized_manifest_is_refused() -> None:
    with pytest.raises(BundleError, match="larger than"):
        parse_manifest(b" " * (MAX_MANIFEST_BYTES + 1))
