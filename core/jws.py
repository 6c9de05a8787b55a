"""Signing a schema1 manifest payload the way the registry does when it serves one.

The registry stores a schema1 manifest unsigned and signs it with its own key each time it serves it (a JSON
web signature in libtrust's "pretty" layout: the payload with a ``signatures`` member inserted before its closing
brace). skopeo writes those signed bytes into a ``dir:`` folder, and the registry refuses to take a schema1
manifest back without a signature when its digest must be kept (``skopeo copy --preserve-digests``). So unpack
signs the payload the same way, with a fresh key, as a registry would: the digest, which covers only the
payload, stays the same. The key proves nothing; no client trusts schema1 signing keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from regpack.errors import BundleError

_WHITESPACE = b" \t\r\n"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """libtrust's key id: base32 of the first 240 bits of the SHA-256 of the key's DER, in groups of four."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    text = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(text[i : i + 4] for i in range(0, len(text), 4))


def _indent(payload: bytes) -> str:
    """The indentation of the payload's first member ('' for compact JSON), which the signature block follows."""
    if len(payload) < 2 or payload[1:2] != b"\n":
        return ""
    rest = payload[2:]
    return rest[: len(rest) - len(rest.lstrip(b" \t"))].decode()


def sign_schema1(payload: bytes, where: str | None = None, image: str | None = None) -> bytes:
    """The payload of a schema1 manifest, signed with a fresh P-256 key in libtrust's pretty JWS layout."""
    end = len(payload.rstrip(_WHITESPACE)) - 1
    if end < 1 or payload[end : end + 1] != b"}":
        raise BundleError("schema1 manifest does not end with '}'; cannot sign it", where, image)
    format_length = len(payload[:end].rstrip(_WHITESPACE))
    if payload[format_length - 1 : format_length] in (b",", b"{"):
        raise BundleError("schema1 manifest has no member to sign after", where, image)
    tail = payload[format_length:]
    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    protected = _b64(
        json.dumps(
            {
                "formatLength": format_length,
                "formatTail": _b64(tail),
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            separators=(",", ":"),
        ).encode()
    )
    der = key.sign(f"{protected}.{_b64(payload)}".encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    signature = {
        "header": {
            "jwk": {
                "crv": "P-256",
                "kid": _key_id(key.public_key()),
                "kty": "EC",
                "x": _b64(numbers.x.to_bytes(32, "big")),
                "y": _b64(numbers.y.to_bytes(32, "big")),
            },
            "alg": "ES256",
        },
        "signature": _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big")),
        "protected": protected,
    }
    # The payload up to its last member, the signatures, and a closing brace (the tail is in the header).
    indent = _indent(payload)
    if indent:
        block = json.dumps([signature], indent=indent).replace("\n", "\n" + indent)
        inserted = f',\n{indent}"signatures": {block}\n}}'
    else:
        inserted = ',"signatures":' + json.dumps([signature], separators=(",", ":")) + "}"
    return payload[:format_length] + inserted.encode()
