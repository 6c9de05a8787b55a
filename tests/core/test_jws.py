"""Signing a schema1 payload as the registry does when it serves one: the signature verifies, the digest (of
the payload) is unchanged, and the signature block follows the payload's layout (compact or indented)."""

from __future__ import annotations

import base64
import hashlib
import json
import re

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from regpack.errors import BundleError
from regpack.jws import sign_schema1
from regpack.manifest import DOCKER_V1_SIGNED, Kind, parse_manifest, schema1_unsigned

DOC = {"schemaVersion": 1, "name": "old/app", "tag": "1", "architecture": "amd64",
       "fsLayers": [{"blobSum": "sha256:" + "ab" * 32}], "history": [{"v1Compatibility": "{}"}]}  # fmt: skip


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_signature(signed: bytes, payload: bytes) -> dict[str, object]:
    sig = json.loads(signed)["signatures"][0]
    jwk = sig["header"]["jwk"]
    assert sig["header"]["alg"] == "ES256" and jwk["kty"] == "EC" and jwk["crv"] == "P-256"
    assert re.fullmatch(r"([A-Z2-7]{4}:){11}[A-Z2-7]{4}", jwk["kid"])
    public = ec.EllipticCurvePublicNumbers(
        int.from_bytes(unb64(jwk["x"]), "big"), int.from_bytes(unb64(jwk["y"]), "big"), ec.SECP256R1()
    ).public_key()
    raw = unb64(sig["signature"])
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    signing_input = f"{sig['protected']}.{base64.urlsafe_b64encode(payload).decode().rstrip('=')}".encode()
    public.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))  # raises when it does not verify
    header = json.loads(unb64(sig["protected"]))
    assert payload[: header["formatLength"]] + unb64(header["formatTail"]) == payload
    return header


@pytest.mark.parametrize("indent", [None, 3], ids=["compact", "indented"])
def test_signed_payload_verifies_and_keeps_its_digest(indent: int | None) -> None:
    payload = json.dumps(DOC, indent=indent, separators=None if indent else (",", ":")).encode()
    signed = sign_schema1(payload)
    check_signature(signed, payload)
    manifest = parse_manifest(signed)
    assert manifest.kind is Kind.SCHEMA1 and manifest.media_type == DOCKER_V1_SIGNED
    assert str(manifest.digest) == "sha256:" + hashlib.sha256(payload).hexdigest()
    assert schema1_unsigned(signed) == payload
    if indent:
        assert b',\n   "signatures": [\n      {' in signed and signed.endswith(b"\n   ]\n}")
    else:
        assert b',"signatures":[{"header":{"jwk":{"crv":"P-256","kid":' in signed and signed.endswith(b"]}")


def test_two_signings_differ_but_share_the_payload() -> None:
    payload = json.dumps(DOC).encode()
    first, second = sign_schema1(payload), sign_schema1(payload)
    assert first != second  # a fresh key each time, as a registry's
    assert schema1_unsigned(first) == schema1_unsigned(second) == payload


@pytest.mark.parametrize("payload", [b"[1]", b"{}", b'{"a":1,}'])
def test_what_cannot_be_signed_is_a_bundle_error(payload: bytes) -> None:
    with pytest.raises(BundleError):
        sign_schema1(payload, "manifest.json", "old/app:1")
