"""Registry storage as real use leaves it: deletes through the registry API, uploads in progress, untagged
revisions, ``garbage-collect`` (with and without ``--delete-untagged``). Built with the real docker-registry
and skopeo; what regpack reads, packs, merges and unpacks is checked against the real registry and skopeo."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from regpack import layouts
from regpack.layouts import _parallel
from regpack.layouts import registry as storage_reader
from regpack.manifest import schema1_unsigned
from regpack.verify import verify
from tests.core.test_parallel_read import _seen, _snapshot
from tests.support import ocibuild as ob
from tests.support.catalog import RealBundle
from tests.support.tools import Registry, Skopeo, find_registry, free_port, registry_config, run_cli
from tests.support.trees import copy_tree, file_sha256

pytestmark = pytest.mark.integration

Serve = Callable[[Path], Registry]


def cli_ok(*args: str | Path) -> subprocess.CompletedProcess[str]:
    result = run_cli(*args)
    assert result.returncode == 0, f"regpack {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def api(registry: Registry, method: str, path: str, data: bytes | None = None) -> tuple[int, dict[str, str]]:
    """One request to the registry's HTTP API: (status, headers)."""
    request = urllib.request.Request(f"http://{registry.host}{path}", method=method, data=data)
    if data is not None:
        request.add_header("Content-Type", "application/octet-stream")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers)


def garbage_collect(root: Path, work: Path, *flags: str) -> str:
    """``docker-registry garbage-collect`` over the storage at ``root`` (no registry may be serving it)."""
    binary = find_registry()
    assert binary is not None
    config = work / f"gc-{free_port()}.yml"
    config.write_text(registry_config(root.resolve(), free_port(), readonly=False))
    result = subprocess.run([binary, "garbage-collect", *flags, str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def v2(root: Path) -> Path:
    return root / "docker" / "registry" / "v2"


# Images: a, b, c share a base layer; idx is a two-platform index over a and arm.
BASE = ob.layer(ob.text_files("base"))
A = ob.image([BASE, ob.layer(ob.text_files("a"))])
B = ob.image([BASE, ob.layer(ob.text_files("b"))])
C = ob.image([BASE, ob.layer(ob.text_files("c"))])
ARM = ob.image([BASE, ob.layer(ob.text_files("arm"))], architecture="arm64")
IDX = ob.index([A, ARM])
NEW = ob.image([BASE, ob.layer(ob.text_files("new"))])


@pytest.fixture(scope="module")
def after_deletes(tmp_path_factory: pytest.TempPathFactory, skopeo: Skopeo) -> Path:
    """Storage of a registry that lived: pushes, a retag, API deletes of a manifest and a blob, an upload
    left in progress, then ``garbage-collect``. Tags left: app:2, app:3 (-> B), multi:1; C is untagged."""
    from tests.support.tools import start_registry

    work = tmp_path_factory.mktemp("after-deletes")
    layout = ob.write_oci_layout(work / "oci", {"a": A, "b": B, "c": C, "idx": IDX})
    root = work / "storage"
    registry = start_registry(root, work / "run")
    try:
        skopeo.copy(f"oci:{layout}:a", registry.ref("app:1"))
        skopeo.copy(f"oci:{layout}:b", registry.ref("app:2"))
        skopeo.copy(f"oci:{layout}:c", registry.ref("app:3"))
        skopeo.copy(f"oci:{layout}:b", registry.ref("app:3"))  # retag: C stays as an untagged revision
        skopeo.copy(f"oci:{layout}:idx", registry.ref("multi:1"))
        assert api(registry, "DELETE", f"/v2/app/manifests/{A.digest}")[0] == 202  # untags app:1
        assert api(registry, "DELETE", f"/v2/app/blobs/{A.layers[1].blob.digest}")[0] == 202
        status, headers = api(registry, "POST", "/v2/app/blobs/uploads/")
        assert status == 202
        location = headers["Location"]
        url = location if location.startswith("http") else f"http://{registry.host}{location}"
        request = urllib.request.Request(url, method="PATCH", data=b"x" * 1000)
        request.add_header("Content-Type", "application/octet-stream")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
    finally:
        registry.stop()
    garbage_collect(root, work)
    repo = v2(root) / "repositories" / "app"
    # what the deletes left behind, as the tests below rely on
    revision = repo / "_manifests" / "revisions" / "sha256" / A.manifest.hex
    layer = repo / "_layers" / "sha256" / A.layers[1].blob.hex
    for folder in (revision, layer):
        assert folder.is_dir() and not (folder / "link").exists(), f"{folder}: expected an empty folder"
    assert any((repo / "_uploads").iterdir()), "expected an upload in progress"
    assert not (repo / "_manifests" / "tags" / "1").exists()
    return root


EXPECTED = {"app:2": B.digest, "app:3": B.digest, f"app@{C.digest}": C.digest, "multi:1": IDX.digest}


def test_storage_after_deletes_reads_like_the_registry_serves_it(
    after_deletes: Path, skopeo: Skopeo, serve_readonly: Serve
) -> None:
    registry = serve_readonly(after_deletes)
    for name, digest in EXPECTED.items():
        assert ob.sha256(skopeo.inspect_raw(registry.ref(name))) == digest
    report = json.loads(cli_ok("verify", after_deletes, "--json").stdout)
    assert report["ok"] and report["errors"] == 0 and report["warnings"] == 0, report
    assert {i["name"] for i in report["images"]} == set(EXPECTED)
    listed = json.loads(cli_ok("inspect", after_deletes, "--json").stdout)
    assert {i["name"]: i["digest"] for i in listed["images"]} == EXPECTED


@pytest.mark.parametrize("flags", [(), ("--zstd",)], ids=["tar", "tar.zst"])
def test_storage_after_deletes_reads_the_same_from_a_tar_of_it(
    after_deletes: Path, tmp_path: Path, flags: tuple[str, ...]
) -> None:
    """The registry's own storage archived with GNU tar (empty folders left by deletes, an upload in progress):
    inspect and verify of the archive say what they say of the folder, files named inside the archive."""
    archive = tmp_path / ("storage.tar" + (".zst" if flags else ""))
    subprocess.run(["tar", *flags, "-cf", str(archive), "-C", str(after_deletes), "."], check=True)
    listed = json.loads(cli_ok("inspect", archive, "--json").stdout)
    folder = json.loads(cli_ok("inspect", after_deletes, "--json").stdout)
    assert {i["name"]: i["digest"] for i in listed["images"]} == EXPECTED
    assert listed["images"] == folder["images"]
    report = json.loads(cli_ok("verify", archive, "--json").stdout)
    assert report["ok"] and report["errors"] == 0 and report["warnings"] == 0, report
    unpacked = tmp_path / "unpacked"
    cli_ok("unpack", archive, "-o", unpacked, "--quiet", "--verify")
    assert {p.name for p in unpacked.iterdir()} >= {"app:2", "multi:1"}


def test_storage_after_deletes_unpacks_and_packs_back(
    after_deletes: Path, skopeo: Skopeo, serve_readonly: Serve, tmp_path: Path
) -> None:
    unpacked = tmp_path / "unpacked"
    cli_ok("unpack", after_deletes, "-o", unpacked, "--quiet", "--verify")
    folders = {p.parent.relative_to(unpacked).as_posix(): p.parent for p in unpacked.rglob("manifest.json")}
    assert set(folders) == set(EXPECTED)  # the untagged revision is a repo@sha256:<hex> folder
    for name, folder in folders.items():
        assert file_sha256(folder / "manifest.json") == EXPECTED[name]
        raw = skopeo.run("inspect", "--raw", f"dir:{folder}").stdout
        assert ob.sha256(raw) == EXPECTED[name]
    packed = tmp_path / "packed"
    cli_ok("pack", unpacked, "-o", packed, "--quiet", "--verify")
    registry = serve_readonly(packed)
    for name, digest in EXPECTED.items():
        assert ob.sha256(skopeo.inspect_raw(registry.ref(name))) == digest
    pulled = tmp_path / "pulled"
    skopeo.copy(registry.ref(f"app@{C.digest}"), f"dir:{pulled}")
    assert (pulled / C.layers[1].blob.hex).read_bytes() == C.layers[1].blob.data


def test_merge_into_storage_after_deletes(
    after_deletes: Path, skopeo: Skopeo, serve_readonly: Serve, tmp_path: Path
) -> None:
    storage = copy_tree(after_deletes, tmp_path / "storage")
    incoming = ob.write_dir_bundle(tmp_path / "incoming", {"app:1": A, "app:4": NEW, "fresh:1": NEW})
    cli_ok("pack", incoming, "-o", storage, "--merge", "--quiet", "--verify")
    # the empty folders the delete left are used again, not tripped over
    assert (v2(storage) / "repositories/app/_manifests/revisions/sha256" / A.manifest.hex / "link").is_file()
    report = json.loads(cli_ok("verify", storage, "--json").stdout)
    assert report["ok"], report
    registry = serve_readonly(storage)
    expected = {**EXPECTED, "app:1": A.digest, "app:4": NEW.digest, "fresh:1": NEW.digest}
    for name, digest in expected.items():
        assert ob.sha256(skopeo.inspect_raw(registry.ref(name))) == digest
    pulled = tmp_path / "pulled"
    skopeo.copy(registry.ref("app:1"), f"dir:{pulled}")
    assert (pulled / A.layers[1].blob.hex).read_bytes() == A.layers[1].blob.data


def test_delete_untagged_breaks_the_list_and_regpack_names_it(
    after_deletes: Path, tmp_path: Path, serve_readonly: Serve, skopeo: Skopeo
) -> None:
    storage = copy_tree(after_deletes, tmp_path / "storage")
    garbage_collect(storage, tmp_path, "--delete-untagged")
    registry = serve_readonly(storage)
    assert skopeo.run("copy", "--all", "--src-tls-verify=false", registry.ref("multi:1"), f"dir:{tmp_path / 'x'}",
                      check=False).returncode != 0  # fmt: skip
    assert ob.sha256(skopeo.inspect_raw(registry.ref("app:2"))) == B.digest

    result = run_cli("verify", storage, "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    broken = {i["name"] for i in report["images"] if not i["ok"]}
    assert broken == {"multi:1"}
    codes = {f["code"] for i in report["images"] for f in i["findings"] if i["name"] == "multi:1"}
    assert "missing-link" in codes
    for command in ("inspect", "pack", "unpack"):
        args = (command, storage) if command == "inspect" else (command, storage, "-o", tmp_path / command)
        result = run_cli(*args)
        assert result.returncode == 1, result.stdout
        assert "image multi:1" in result.stderr and "Traceback" not in result.stderr
        assert not (tmp_path / command).exists()


# --- layers of ordinary media types that carry urls and have no blob ---------------------------------------

ALLOW_URLS = "validation:\n  manifests:\n    urls:\n      allow:\n        - ^https?://\n"
EXT_URL = "https://example.com/layers/ext.tar.gz"


def test_layer_with_urls_and_no_blob_is_carried_like_a_foreign_layer(
    tmp_path: Path, skopeo: Skopeo, serve_readonly: Serve
) -> None:
    from tests.support.tools import start_registry

    ext = ob.layer(ob.text_files("ext"))
    plain = ob.image([BASE, ext])
    doc = json.loads(plain.manifest.data)
    doc["layers"][1]["urls"] = [EXT_URL]
    assert doc["layers"][1]["mediaType"] == ob.OCI_LAYER_GZIP
    with_urls = ob.Image(ob.Blob(ob.json_bytes(doc), ob.OCI_MANIFEST), plain.config, plain.layers, "linux", "amd64")
    layout = ob.write_oci_layout(tmp_path / "oci", {"ext:1": with_urls})
    (layout / "blobs" / "sha256" / ext.blob.hex).unlink()
    root = tmp_path / "storage"
    registry = start_registry(root, tmp_path / "run", extra_config=ALLOW_URLS)
    try:
        skopeo.copy(f"oci:{layout}:ext:1", registry.ref("ext:1"))  # skopeo leaves the layer out, the registry takes it
    finally:
        registry.stop()
    assert not (v2(root) / "blobs" / "sha256" / ext.blob.hex[:2] / ext.blob.hex).exists()

    assert json.loads(cli_ok("verify", root, "--json").stdout)["ok"]
    text = cli_ok("inspect", root).stdout
    assert f"ext:1: {ext.blob.digest}" in text and EXT_URL in text and "not in the bundle" in text
    listed = json.loads(cli_ok("inspect", root, "--json").stdout)["images"][0]["external_layers"]
    assert listed == [{"digest": ext.blob.digest, "size": ext.blob.size, "media_type": ob.OCI_LAYER_GZIP,
                       "urls": [EXT_URL]}]  # fmt: skip

    unpacked = tmp_path / "unpacked"
    cli_ok("unpack", root, "-o", unpacked, "--quiet", "--verify")
    folder = unpacked / "ext:1"
    assert file_sha256(folder / "manifest.json") == with_urls.digest
    assert not (folder / ext.blob.hex).exists() and (folder / BASE.blob.hex).is_file()
    skopeo.copy(f"dir:{folder}", f"oci:{tmp_path / 'from-dir'}:x")  # skopeo reads the folder as it is

    for n, source in enumerate((layout, unpacked)):
        packed = tmp_path / f"packed-{n}"
        cli_ok("pack", source, "-o", packed, "--quiet", "--verify")
        served = serve_readonly(packed)
        assert skopeo.inspect_raw(served.ref("ext:1")) == with_urls.manifest.data
        pulled = tmp_path / f"pulled-{n}"
        skopeo.copy(served.ref("ext:1"), f"oci:{pulled}:x")
        assert (pulled / "blobs" / "sha256" / BASE.blob.hex).read_bytes() == BASE.blob.data


# --- folders a dir tree must not skip in silence --------------------------------------------------------------


def test_half_written_and_nested_image_folders_are_reported(
    tmp_path: Path, skopeo: Skopeo, registry: Registry, serve_readonly: Serve
) -> None:
    layout = ob.write_oci_layout(tmp_path / "oci", {"a": A, "b": B})
    skopeo.copy(f"oci:{layout}:a", registry.ref("team/app:1"))
    skopeo.copy(f"oci:{layout}:b", registry.ref("team/app:2"))
    assert api(registry, "DELETE", f"/v2/team/app/blobs/{B.layers[1].blob.digest}")[0] == 202  # app:2 cannot copy
    tree = tmp_path / "tree"
    sync = skopeo.run("sync", "--keep-going", "--src", "docker", "--dest", "dir", "--src-tls-verify=false",
                      f"{registry.host}/team/app", str(tree), check=False)  # fmt: skip
    assert sync.returncode != 0
    half = tree / "app:2"
    assert (half / "version").is_file() and not (half / "manifest.json").exists()
    assert (tree / "app:1" / "manifest.json").is_file()

    # a half-written folder: a warning naming it; what is there is packed and served
    report = json.loads(cli_ok("verify", tree, "--json").stdout)
    found = {(i["name"], f["code"], f["severity"]) for i in report["images"] for f in i["findings"]}
    assert found == {("app:2", "incomplete-image", "warning")}
    assert "warn    app:2" in cli_ok("verify", tree).stdout
    for command in ("inspect", "pack"):
        args = (command, tree) if command == "inspect" else (command, tree, "-o", tmp_path / "packed", "--quiet")
        result = cli_ok(*args)
        assert f"regpack: warning: image app:2: {half}: image folder holds no manifest.json" in result.stderr
    served = serve_readonly(tmp_path / "packed")
    assert ob.sha256(skopeo.inspect_raw(served.ref("app:1"))) == A.digest

    # an image folder inside an image folder: an error naming it; nothing written
    nested = tree / "app:1" / "sub:1"
    skopeo.copy(f"oci:{layout}:b", f"dir:{nested}")
    result = run_cli("verify", tree, "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    codes = {(i["name"], f["code"], f["path"]) for i in report["images"] for f in i["findings"]}
    assert ("app:1/sub:1", "nested-image", str(nested)) in codes
    for command in ("inspect", "pack"):
        out = tmp_path / "refused"
        args = (command, tree) if command == "inspect" else (command, tree, "-o", out)
        result = run_cli(*args)
        assert result.returncode == 1
        assert f"{nested}: image folder inside the image folder app:1" in result.stderr
        assert not out.exists()


# --- schema1: the registry stores the unsigned payload and signs it when serving -------------------------------

SCHEMA1 = "compatibility:\n  schema1:\n    enabled: true\n"


def blob_data(root: Path, digest: str) -> Path:
    hex_ = digest.split(":", 1)[1]
    return v2(root) / "blobs" / "sha256" / hex_[:2] / hex_ / "data"


def test_schema1_is_packed_unsigned_as_the_registry_stores_it(
    tmp_path: Path, skopeo: Skopeo, serve_readonly: Serve
) -> None:
    from tests.support.tools import start_registry

    layout = ob.write_oci_layout(tmp_path / "oci", {"a": A})
    own = tmp_path / "registry-own"
    registry = start_registry(own, tmp_path / "run", extra_config=SCHEMA1)
    tree = tmp_path / "tree"
    (tree / "old").mkdir(parents=True)
    try:
        skopeo.copy(f"oci:{layout}:a", registry.ref("old/app:1"), "--format", "v2s1")
        skopeo.copy(registry.ref("old/app:1"), f"dir:{tree / 'old/app:1'}")
    finally:
        registry.stop()
    signed = (tree / "old/app:1" / "manifest.json").read_bytes()
    assert json.loads(signed)["schemaVersion"] == 1 and b'"signatures"' in signed
    digest = (v2(own) / "repositories/old/app/_manifests/tags/1/current/link").read_text()
    payload = blob_data(own, digest).read_bytes()
    assert b'"signatures"' not in payload and ob.sha256(payload) == digest  # what the registry keeps

    assert json.loads(cli_ok("verify", own, "--json").stdout)["ok"]
    assert json.loads(cli_ok("verify", tree, "--json").stdout)["ok"]
    packed = tmp_path / "packed"
    cli_ok("pack", tree, "-o", packed, "--quiet", "--verify")
    assert blob_data(packed, digest).read_bytes() == payload, "stored as the registry stores it"
    served = serve_readonly(packed)
    pulled = tmp_path / "pulled"
    skopeo.copy(served.ref(f"old/app@{digest}"), f"dir:{pulled}")  # a pull by digest checks the payload's digest
    assert (pulled / A.layers[1].blob.hex).read_bytes() == A.layers[1].blob.data

    # unpack signs the payload as the registry does when skopeo pulls: same digest, and the registry takes it
    # back as it is (a schema1 manifest with its digest kept must be signed)
    unpacked = tmp_path / "unpacked"
    cli_ok("unpack", own, "-o", unpacked, "--quiet", "--verify")
    folder = unpacked / "old/app:1"
    written = (folder / "manifest.json").read_bytes()
    assert written != payload and b'"signatures"' in written
    assert schema1_unsigned(written) == payload
    assert skopeo.run("manifest-digest", str(folder / "manifest.json")).stdout.decode().strip() == digest
    target = start_registry(tmp_path / "target", tmp_path / "run-target", extra_config=SCHEMA1)
    try:
        skopeo.copy(f"dir:{folder}", target.ref("old/app:1"), "--preserve-digests")
    finally:
        target.stop()
    assert (v2(tmp_path / "target") / "repositories/old/app/_manifests/tags/1/current/link").read_text() == digest
    assert blob_data(tmp_path / "target", digest).read_bytes() == payload
    again = tmp_path / "again"
    cli_ok("pack", unpacked, "-o", again, "--quiet")
    assert blob_data(again, digest).read_bytes() == payload
    # the registry's storage in a tar: the payload is signed on unpack from the archive as from the folder
    archive = tmp_path / "own.tar"
    subprocess.run(["tar", "-cf", str(archive), "-C", str(own), "."], check=True)
    from_archive = tmp_path / "unpacked-from-archive"
    cli_ok("unpack", archive, "-o", from_archive, "--quiet", "--verify")
    assert schema1_unsigned((from_archive / "old/app:1" / "manifest.json").read_bytes()) == payload
    cli_ok("pack", archive, "-o", tmp_path / "again-from-archive", "--quiet")
    assert blob_data(tmp_path / "again-from-archive", digest).read_bytes() == payload
    skopeo.copy(serve_readonly(again).ref(f"old/app@{digest}"), f"dir:{tmp_path / 'pulled-again'}")

    # storage holding the signed bytes instead: the registry serves them signed twice; verify says so
    broken = copy_tree(packed, tmp_path / "broken")
    data = blob_data(broken, digest)
    data.unlink()
    data.write_bytes(signed)
    result = run_cli("verify", broken, "--json")
    assert result.returncode == 1
    findings = [f for i in json.loads(result.stdout)["images"] for f in i["findings"] if i["name"] == "old/app:1"]
    assert [(f["code"], f["path"]) for f in findings] == [("schema1-signed", str(data))]
    served_broken = serve_readonly(broken)
    pull = skopeo.run("copy", "--src-tls-verify=false", served_broken.ref(f"old/app@{digest}"),
                      f"dir:{tmp_path / 'x'}", check=False)  # fmt: skip
    assert pull.returncode != 0


# Storage the real registry wrote reads the same with the helper process (layouts._parallel) as in one process:
# images, blobs, problems and the verify report.


def _same_both_ways(storage: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_parallel, "MIN_REPOSITORIES", 10**9)
    alone = storage_reader.read(storage)
    one = verify(storage)
    monkeypatch.setattr(_parallel, "MIN_REPOSITORIES", 1)
    monkeypatch.setattr(_parallel, "BLOCK", 1)
    monkeypatch.setattr(layouts, "_single_threaded", lambda: True)  # see tests/core/test_parallel_read.py
    replayed = 0
    real = _parallel.Replay

    class Counted(real):  # type: ignore[misc,valid-type]
        def __init__(self, *args: object) -> None:
            nonlocal replayed
            replayed += 1
            super().__init__(*args)

    monkeypatch.setattr(_parallel, "Replay", Counted)
    for share in (1.0, 0.5):
        monkeypatch.setattr(_parallel, "HELPER_SHARE", share)
        assert _snapshot(storage_reader.read(storage)) == _snapshot(alone)
        two = verify(storage)
        assert _seen(two) == _seen(one)
        assert (two.images, two.files_hashed, two.bytes_hashed) == (one.images, one.files_hashed, one.bytes_hashed)
    assert replayed >= len(storage_reader.repositories(storage / storage_reader.V2))


def test_storage_the_registry_wrote_reads_the_same_with_the_helper(
    real_bundle: RealBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    _same_both_ways(real_bundle.storage_root, monkeypatch)


def test_storage_after_deletes_reads_the_same_with_the_helper(
    after_deletes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _same_both_ways(after_deletes, monkeypatch)
