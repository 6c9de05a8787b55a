"""Property tests: whatever bytes, JSON or names a bundle holds, the parsers answer with a value or a
RegpackError, never another exception; and valid values survive a round trip unchanged."""

from __future__ import annotations

import hashlib
import json
import os
import string
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from regpack.digest import Digest
from regpack.errors import RegpackError
from regpack.layouts._common import SafeRoot
from regpack.layouts.registry import link_text, read_link
from regpack.manifest import (
    DOCKER_LIST,
    DOCKER_V1,
    DOCKER_V2,
    OCI_INDEX,
    OCI_MANIFEST,
    Kind,
    Manifest,
    parse_manifest,
)
from regpack.names import (
    DOCKER_HUB,
    Reference,
    parse_folder_reference,
    parse_reference,
    valid_repository,
    valid_tag,
)

ROOT = Path(__file__).resolve().parents[2]

COMMON = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- building blocks -------------------------------------------------------------------------------------

HEX = "0123456789abcdef"
sha256_hex = st.text(HEX, min_size=64, max_size=64)
sha512_hex = st.text(HEX, min_size=128, max_size=128)
valid_digest_text = st.one_of(sha256_hex.map("sha256:{}".format), sha512_hex.map("sha512:{}".format))

# Text that looks a lot like a digest: the near misses are where a lax parser goes wrong.
near_digest_text = st.builds(
    lambda algo, sep, body, tail: f"{algo}{sep}{body}{tail}",
    st.sampled_from(["sha256", "sha512", "SHA256", "sha384", "md5", "", "sha256 "]),
    st.sampled_from([":", "", "::", "-", "@"]),
    st.one_of(sha256_hex, sha512_hex, sha256_hex.map(str.upper), st.text(HEX + "gG ", max_size=130)),
    st.sampled_from(["", "\n", " ", "\x00", ":", "\u0660"]),
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)

MEDIA_TYPES = [DOCKER_V2, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX, DOCKER_V1, "application/x-unknown", ""]


def descriptor_like() -> st.SearchStrategy[Any]:
    """Objects shaped like descriptors, with every field sometimes wrong."""
    return st.one_of(
        json_values,
        st.fixed_dictionaries(
            {},
            optional={
                "mediaType": st.one_of(st.sampled_from(MEDIA_TYPES), json_values),
                "digest": st.one_of(valid_digest_text, near_digest_text, json_values),
                "size": st.one_of(st.integers(min_value=-5, max_value=2**64), json_values),
                "urls": st.one_of(st.lists(st.text(max_size=20), max_size=2), json_values),
                "platform": st.one_of(
                    st.fixed_dictionaries({}, optional={"os": json_values, "architecture": json_values}), json_values
                ),
                "annotations": json_values,
            },
        ),
    )


def jws_signature() -> st.SearchStrategy[Any]:
    """schema1 signatures whose protected header is real base64 of (often wrong) JSON, or junk."""
    header = st.fixed_dictionaries(
        {}, optional={"formatLength": json_values, "formatTail": st.one_of(st.text(max_size=8), json_values)}
    )
    protected = st.one_of(
        header.map(lambda h: _b64url(json.dumps(h).encode())),
        st.text(max_size=30),
        json_values,
    )
    return st.one_of(st.fixed_dictionaries({"protected": protected}), json_values)


def _b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).decode().rstrip("=")


manifest_like = st.fixed_dictionaries(
    {},
    optional={
        "schemaVersion": st.one_of(st.sampled_from([1, 2, 3, 2.0, "2", True, 0, -1]), json_values),
        "mediaType": st.one_of(st.sampled_from(MEDIA_TYPES), json_values),
        "config": descriptor_like(),
        "layers": st.one_of(st.lists(descriptor_like(), max_size=3), json_values),
        "manifests": st.one_of(st.lists(descriptor_like(), max_size=3), json_values),
        "subject": descriptor_like(),
        "annotations": json_values,
        "fsLayers": st.one_of(
            st.lists(st.one_of(st.fixed_dictionaries({"blobSum": near_digest_text}), json_values), max_size=3),
            json_values,
        ),
        "signatures": st.one_of(st.lists(jws_signature(), max_size=2), json_values),
    },
)


def _only_regpack_errors(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except RegpackError:
        return None


# --- manifests -------------------------------------------------------------------------------------------


@COMMON
@given(st.binary(max_size=400))
@example(b"[" * 100_000)  # nesting deeper than the JSON parser's recursion limit
@example(b'{"schemaVersion":2,"mediaType":"' + DOCKER_V2.encode() + b'","config":{"size":1e999}}')
@example(b"\xff\xfe{\x00}\x00")
@example(b'{"schemaVersion":2,"layers":[],"config":{"digest":"sha256:\\ud800"}}')
def test_parse_manifest_of_any_bytes_raises_only_regpack_errors(data: bytes) -> None:
    result = _only_regpack_errors(parse_manifest, data, "manifest.json", "img:1")
    if result is not None:
        assert isinstance(result, Manifest)
        assert result.size == len(data)


@COMMON
@given(manifest_like, st.sampled_from(["", DOCKER_V2, OCI_INDEX]))
@example(
    {"schemaVersion": 1, "fsLayers": [], "signatures": [{"protected": _b64url(b'{"formatLength":1,"formatTail":7}')}]},
    "",
)
@example({"schemaVersion": 2, "mediaType": DOCKER_V2, "config": {"digest": "sha256:" + "0" * 64}}, "")
def test_parse_manifest_of_json_shapes_raises_only_regpack_errors(doc: dict[str, Any], hint: str) -> None:
    data = json.dumps(doc).encode()
    result = _only_regpack_errors(parse_manifest, data, "manifest.json", None, hint)
    if result is not None:
        assert isinstance(result, Manifest)


def test_schema1_signature_with_infinite_format_length_is_a_bundle_error() -> None:
    doc = {"schemaVersion": 1, "fsLayers": [], "signatures": [{"protected": _b64url(b'{"formatLength":1e999}')}]}
    with pytest.raises(RegpackError, match="signature"):
        parse_manifest(json.dumps(doc).encode(), "manifest.json")


descriptor = st.builds(
    lambda hex_, size, mt: {"mediaType": mt, "size": size, "digest": f"sha256:{hex_}"},
    sha256_hex,
    st.integers(min_value=0, max_value=2**40),
    st.sampled_from(
        ["application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.docker.image.rootfs.diff.tar.gzip"]
    ),
)


@COMMON
@given(
    st.sampled_from([(DOCKER_V2, Kind.SCHEMA2), (OCI_MANIFEST, Kind.OCI)]),
    descriptor,
    st.lists(descriptor, max_size=6),
    st.booleans(),
)
def test_valid_image_manifest_round_trips(
    kind: tuple[str, Kind], config: dict[str, Any], layers: list[dict[str, Any]], pretty: bool
) -> None:
    media_type, expected_kind = kind
    doc = {"schemaVersion": 2, "mediaType": media_type, "config": config, "layers": layers}
    data = json.dumps(doc, indent=3 if pretty else None).encode()
    m = parse_manifest(data)
    assert m.kind is expected_kind
    assert str(m.digest) == "sha256:" + hashlib.sha256(data).hexdigest()  # the exact bytes, never re-serialized
    assert m.size == len(data)
    assert m.config is not None and str(m.config.digest) == config["digest"] and m.config.size == config["size"]
    assert [str(d.digest) for d in m.layers] == [d["digest"] for d in layers]
    assert [d.size for d in m.layers] == [d["size"] for d in layers]


@COMMON
@given(
    st.sampled_from([(DOCKER_LIST, Kind.DOCKER_LIST), (OCI_INDEX, Kind.OCI_INDEX)]), st.lists(descriptor, max_size=5)
)
def test_valid_list_round_trips(kind: tuple[str, Kind], children: list[dict[str, Any]]) -> None:
    media_type, expected_kind = kind
    data = json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": children}).encode()
    m = parse_manifest(data)
    assert m.kind is expected_kind and m.kind.is_list
    assert [str(c.digest) for c in m.children] == [c["digest"] for c in children]
    assert m.layers == () and m.config is None


# --- digests ---------------------------------------------------------------------------------------------


@COMMON
@given(st.one_of(near_digest_text, st.text(max_size=140), json_values))
def test_digest_parse_raises_only_regpack_errors_and_accepts_only_canonical_text(text: Any) -> None:
    d = _only_regpack_errors(Digest.parse, text)
    if d is not None:
        assert str(d) == text, "an accepted digest is exactly its canonical text"


@COMMON
@given(valid_digest_text)
def test_valid_digest_round_trips(text: str) -> None:
    d = Digest.parse(text)
    assert str(d) == text
    assert d.algorithm == text.split(":")[0]
    assert d.short == text.split(":")[1][:12]
    assert Digest.parse(str(d)) == d


# --- names -----------------------------------------------------------------------------------------------

component = st.from_regex(r"[a-z0-9]{1,6}(?:(?:\.|_|__|-{1,2})[a-z0-9]{1,6}){0,2}", fullmatch=True)
tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
host = st.one_of(
    st.just("localhost"),
    st.builds(lambda a, b, port: f"{a}.{b}{port}", component, component, st.sampled_from(["", ":5000", ":443"])),
    st.builds(lambda a, port: f"{a}:{port}", component, st.integers(1, 65535)),
)


@st.composite
def references(draw: st.DrawFn) -> Reference:
    parts = draw(st.lists(component, min_size=1, max_size=3))
    scoped = draw(st.booleans())
    # Without a host, a first component that looks like one (a dot, or "localhost") would be read as a host,
    # as Docker reads it: such a name cannot be written unscoped.
    assume(scoped or len(parts) == 1 or not ("." in parts[0] or parts[0] == "localhost"))
    repository = "/".join(parts)
    assume(valid_repository(repository))
    chosen_host = draw(host) if scoped else ""
    # A one-level name on Docker Hub is an official image: docker.io/alpine reads as library/alpine.
    assume(chosen_host not in DOCKER_HUB or len(parts) > 1)
    if draw(st.booleans()):
        return Reference(repository, draw(tag), None, chosen_host)
    digest = Digest.parse(draw(valid_digest_text))
    return Reference(repository, None, digest, chosen_host)


name_chars = string.ascii_letters + string.digits + "._-:@/ \n\x00" + "\u00e9\udcff"


@COMMON
@given(st.one_of(st.text(name_chars, max_size=60), st.text(max_size=60)))
@example("../../sentinel:1")
@example("/etc/passwd:1")
@example("a//b:1")
@example("app@sha256:" + "A" * 64)
@example("host:5000/:1")
def test_reference_parsers_raise_only_regpack_errors(text: str) -> None:
    for parse, arg in ((parse_reference, text), (parse_folder_reference, PurePosixPath(text))):
        ref = _only_regpack_errors(parse, arg)
        if ref is None:
            continue
        assert isinstance(ref, Reference)
        if ref.repository:  # parse_reference("") is the empty reference, nothing to check
            # Whatever was accepted is safe as a path below a destination and parses back to itself.
            assert valid_repository(ref.repository)
            assert ref.tag is None or valid_tag(ref.tag)
            assert ".." not in ref.folder.parts and not ref.folder.is_absolute()
            assert parse_folder_reference(ref.folder) == ref


@COMMON
@given(references())
def test_valid_reference_folder_round_trips(ref: Reference) -> None:
    assert parse_folder_reference(ref.folder) == ref
    assert parse_reference(str(ref.folder)) == ref
    if not ref.host:
        assert str(ref.folder) == str(ref)


# --- registry link files ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def link_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="regpack-links-") as d:
        yield Path(d)


link_contents = st.one_of(
    st.binary(max_size=200),
    near_digest_text.map(lambda t: t.encode("utf-8", "surrogatepass")),
    sha256_hex.map(lambda h: f"sha256:{h}".encode()),
    st.builds(
        lambda h, tail: f"sha256:{h}".encode() + tail, sha256_hex, st.sampled_from([b"\n", b"\r\n", b" ", b"\x00"])
    ),
    st.integers(min_value=500, max_value=5000).map(lambda n: b"sha256:" + b"0" * n),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=link_contents, kind=st.sampled_from(["file", "file", "file", "folder", "missing", "symlink-out"]))
def test_read_link_of_any_file_raises_only_regpack_errors(link_dir: Path, content: bytes, kind: str) -> None:
    root = Path(tempfile.mkdtemp(dir=link_dir))
    path = root / "link"
    if kind == "file":
        path.write_bytes(content)
    elif kind == "folder":
        path.mkdir()
    elif kind == "symlink-out":
        outside = link_dir / f"outside-{os.path.basename(root)}"
        outside.write_bytes(content)
        os.symlink(outside, path)
    d = _only_regpack_errors(read_link, path, SafeRoot(root))
    if d is not None:
        assert kind == "file"
        assert link_text(d) == content, "an accepted link file holds exactly the digest, nothing else"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hex_=sha256_hex)
def test_link_text_round_trips(link_dir: Path, hex_: str) -> None:
    digest = Digest("sha256", hex_)
    path = Path(tempfile.mkdtemp(dir=link_dir)) / "link"
    path.write_bytes(link_text(digest))
    assert path.read_bytes() == f"sha256:{hex_}".encode()  # no newline: the registry refuses one
    assert read_link(path, SafeRoot(path.parent)) == digest


# ---------------------------------------------------------------------------------------------- plan paths

_PARTS = st.sampled_from(["a", "b1", ".", "..", "", "...", ".x", "x.", "sha256"])
_PATH_TEXT = st.lists(_PARTS, max_size=6).map("/".join)


@given(st.one_of(_PATH_TEXT, st.text(alphabet="ab./", max_size=12)))
@example("")
@example("/")
@example("a/")
def test_a_plan_refuses_exactly_the_paths_that_could_leave_its_destination(dst: str) -> None:
    from regpack.plan import Plan

    escapes = not dst or dst.startswith("/") or any(part in ("", ".", "..") for part in dst.split("/"))
    plan = Plan()
    try:
        plan.write(dst, b"x")
    except RegpackError:
        assert escapes, f"{dst!r} was refused"
    else:
        assert not escapes, f"{dst!r} was accepted"


_SAFE_PATH = st.lists(st.sampled_from(["a", "b", "c1", "sha256", "data", "link"]), min_size=1, max_size=6).map("/".join)


@given(st.lists(st.tuples(_SAFE_PATH, st.booleans()), max_size=40))
def test_plan_folders_are_each_ancestor_once_after_its_parent(ops: list[tuple[str, bool]]) -> None:
    from regpack.plan import Plan

    plan = Plan()
    for dst, is_blob in ops:
        if dst in plan.blobs or dst in plan.files or any(d.startswith(dst + "/") for d in (*plan.blobs, *plan.files)):
            continue  # a path that is both a file and a folder is another test's business
        if any(dst.startswith(f + "/") for f in (*plan.blobs, *plan.files)):
            continue
        if is_blob:
            plan.place("/src", dst, 1)
        else:
            plan.write(dst, b"x")
    folders = plan.directories()
    wanted = {d.rsplit("/", n)[0] for d in (*plan.blobs, *plan.files) for n in range(1, d.count("/") + 1)}
    assert sorted(folders) == sorted(wanted)  # every ancestor, each once
    position = {d: i for i, d in enumerate(folders)}
    for d in folders:
        parent = d.rpartition("/")[0]
        assert not parent or position[parent] < position[d]  # made before its children
