"""Push, pull and serve against a real docker-registry on 127.0.0.1 with TLS and htpasswd logins, driving the real
skopeo: names and digests arrive unchanged, a rerun finds everything there, a wrong password is named, a killed
push completes on the rerun, and pull -> pack -> serve hands out the same digests."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.catalog import Generated, RealBundle
from tests.support.secure import PASSWORD, USER, SecureRegistry, missing_secure_tools, start_secure_registry
from tests.support.synth import generate
from tests.support.tools import REPO_ROOT, Skopeo, run_cli
from tests.support.trees import tree_bytes

pytestmark = pytest.mark.integration


@pytest.fixture
def secure(tmp_path: Path) -> Iterator[SecureRegistry]:
    missing = missing_secure_tools()
    if missing:
        message = f"these tests need {', '.join(missing)} (apt-get install openssl apache2-utils)"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    reg = start_secure_registry(tmp_path / "secure")
    yield reg
    reg.stop()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def remote_digest(skopeo: Skopeo, secure: SecureRegistry, name: str) -> str:
    raw = skopeo.run(
        "inspect", "--raw", "--authfile", str(secure.authfile), "--cert-dir", str(secure.cert_dir), secure.ref(name)
    ).stdout
    return sha256(raw)


def dir_digests(root: Path) -> dict[str, str]:
    return {p.parent.relative_to(root).as_posix(): sha256(p.read_bytes()) for p in root.rglob("manifest.json")}


def source_of(layout: str, real_bundle: RealBundle) -> tuple[Path, dict[str, str]]:
    """The bundle of a layout and the digest of every reference in it, read from its files directly."""
    if layout == "dir":
        return real_bundle.dir_root, dir_digests(real_bundle.dir_root)
    if layout == "registry":
        repos = real_bundle.storage_root / "docker" / "registry" / "v2" / "repositories"
        found = {}
        for link in repos.rglob("_manifests/tags/*/current/link"):
            tag_dir = link.parent.parent
            repository = tag_dir.parent.parent.parent.relative_to(repos).as_posix()
            found[f"{repository}:{tag_dir.name}"] = link.read_text()
        return real_bundle.storage_root, found
    index = json.loads((real_bundle.oci_layout / "index.json").read_text())
    refs = {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"] for m in index["manifests"]}
    return real_bundle.oci_layout, refs


def push_cli(*args: str | Path, password: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "regpack", "push", *map(str, args)],
        input=None if password is None else password + "\n",
        capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=timeout,
    )  # fmt: skip


@pytest.mark.parametrize("layout", ["dir", "registry", "oci"])
def test_push_every_layout_arrives_under_full_names_with_the_same_digests(
    layout: str, real_bundle: RealBundle, secure: SecureRegistry, skopeo: Skopeo, tmp_path: Path
) -> None:
    src, expected = source_of(layout, real_bundle)
    assert len(expected) == len(real_bundle.refs)
    assert any(ref.count("/") >= 2 for ref in expected) and "multi/arch:1.0" in expected
    tls = ("--tls-verify=false",) if layout == "registry" else ("--cert-dir", secure.cert_dir)
    first = push_cli(src, f"{secure.host}/site", "--authfile", secure.authfile, *tls)
    assert first.returncode == 0, first.stderr
    assert f"{len(expected)} images: {len(expected)} pushed, 0 already there, 0 failed" in first.stdout
    for ref, digest in expected.items():
        assert remote_digest(skopeo, secure, f"site/{ref}") == digest, ref
    # nested names keep every component (skopeo sync from a dir tree keeps only the last one)
    assert (secure.storage / "docker/registry/v2/repositories/site/a/b/c/_manifests").is_dir()

    again = push_cli(src, f"{secure.host}/site", "--authfile", secure.authfile, *tls)
    assert again.returncode == 0, again.stderr
    assert f"{len(expected)} images: 0 pushed, {len(expected)} already there, 0 failed" in again.stdout

    if layout == "dir":  # what arrived is what was sent, byte for byte (multi-arch: every platform)
        pulled = tmp_path / "pulled"
        skopeo.run(
            "copy", "--all", "--quiet", "--authfile", str(secure.authfile), "--src-cert-dir", str(secure.cert_dir),
            secure.ref("site/multi/arch:1.0"), f"dir:{pulled}",
        )  # fmt: skip
        assert tree_bytes(pulled) == tree_bytes(real_bundle.folder("multi/arch:1.0"))


def test_typed_password_works_and_a_wrong_one_is_named(
    generated: Generated, secure: SecureRegistry, skopeo: Skopeo
) -> None:
    target = f"{secure.host}/typed"
    wrong = push_cli(
        generated.dir_root, target, "--username", USER, "--password-stdin", "--cert-dir", secure.cert_dir,
        password="not-the-password",
    )  # fmt: skip
    assert wrong.returncode == 1
    assert "Traceback" not in wrong.stderr
    assert "not-the-password" not in wrong.stdout + wrong.stderr
    assert "FAILED" in wrong.stdout and "unauthorized" in wrong.stdout.lower()
    assert f"alpine:3.19 -> docker://{target}/alpine:3.19" in wrong.stderr
    # the first refusal stops the rest: they are listed, not tried
    assert "3 images: 0 pushed, 0 already there" in wrong.stdout

    right = push_cli(
        generated.dir_root, target, "--username", USER, "--password-stdin", "--cert-dir", secure.cert_dir,
        password=PASSWORD,
    )  # fmt: skip
    assert right.returncode == 0, right.stderr
    assert "3 images: 3 pushed" in right.stdout
    for ref, digest in dir_digests(generated.dir_root).items():
        assert remote_digest(skopeo, secure, f"typed/{ref}") == digest


def test_untrusted_certificate_fails_with_the_tls_reason(generated: Generated, secure: SecureRegistry) -> None:
    result = push_cli(generated.dir_root, secure.host, "--authfile", secure.authfile)
    assert result.returncode == 1
    assert "certificate" in result.stderr and "Traceback" not in result.stderr


def _tags_landed(repositories: Path) -> int:
    """Tags the live registry has written below ``repositories``. Walked with os.walk, which passes over the
    upload folders the registry creates and removes meanwhile (a recursive glob fails on a vanished folder)."""
    landed = 0
    for folder, dirs, files in os.walk(repositories):
        dirs[:] = [d for d in dirs if d not in ("_uploads", "_layers", "revisions", "index")]
        landed += "link" in files and os.path.basename(folder) == "current"
    return landed


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_push_completes_on_the_rerun(
    signum: int, tmp_path: Path, secure: SecureRegistry, skopeo: Skopeo
) -> None:
    bundle = tmp_path / "bundle"
    generate(bundle, images=24, layers=3, blob_size=96 << 10, seed=7, lists=2)
    expected = dir_digests(bundle)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    args = [sys.executable, "-m", "regpack", "push", str(bundle), f"{secure.host}/k", "--jobs", "1"]
    tls = ["--authfile", str(secure.authfile), "--cert-dir", str(secure.cert_dir)]
    process = subprocess.Popen([*args, *tls], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tags = secure.storage / "docker/registry/v2/repositories/k"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if _tags_landed(tags) >= 3:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the push ended before it could be killed"
    process.send_signal(signum)
    _, err = process.communicate(timeout=30)
    if signum == signal.SIGTERM:  # a clean stop: skopeo is terminated, the shell's status for SIGTERM
        assert process.returncode == 143, err
        assert b"pushed stay in the registry" in err and b"Traceback" not in err
    landed = _tags_landed(tags)
    assert 3 <= landed < len(expected)

    rerun = subprocess.run([*args, *tls], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    summary = rerun.stdout.strip().splitlines()[-1]
    pushed, present = (
        int(summary.split(" pushed")[0].rsplit(" ", 1)[1]),
        int(summary.split(" already")[0].rsplit(" ", 1)[1]),
    )
    assert pushed + present == len(expected) and present >= 3 and pushed >= 1, summary
    for ref, digest in expected.items():
        assert remote_digest(skopeo, secure, f"k/{ref}") == digest, ref


def test_pull_a_list_pack_and_serve_gives_the_same_digests(
    generated: Generated, secure: SecureRegistry, skopeo: Skopeo, tmp_path: Path
) -> None:
    expected = dir_digests(generated.dir_root)
    pushed = push_cli(
        generated.dir_root, f"{secure.host}/rel", "--authfile", secure.authfile, "--cert-dir", secure.cert_dir
    )
    assert pushed.returncode == 0, pushed.stderr
    listing = tmp_path / "release.txt"
    listing.write_text(
        "# release 1.0\n\n" + "".join(f"docker://{secure.host}/rel/{ref}   # {i}\n" for i, ref in enumerate(expected))
    )
    storage = tmp_path / "storage"
    access = ("--authfile", secure.authfile, "--cert-dir", secure.cert_dir)
    pulled = run_cli("pull", listing, "-o", storage, "--pack", *access)
    assert pulled.returncode == 0, pulled.stderr
    assert f"{len(expected)} images: {len(expected)} pulled" in pulled.stdout
    assert not Path(f"{storage}.partial-pull").exists()
    assert (storage / "docker/registry/v2/repositories/rel/calico/node").is_dir()
    sources = json.loads((storage / "regpack-sources.json").read_text())["images"]
    assert {name: entry["digest"] for name, entry in sources.items()} == {f"rel/{r}": d for r, d in expected.items()}
    assert sources["rel/multi:1"]["source"] == f"docker://{secure.host}/rel/multi:1"

    again = run_cli("pull", listing, "-o", storage, "--pack", *access)
    assert again.returncode == 0, again.stderr
    assert f"0 pulled, {len(expected)} already there" in again.stdout

    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-m", "regpack", "serve", str(storage)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert "read-only at http://127.0.0.1:" in first, first + server.stderr.read() if server.stderr else first
        address = first.split("http://", 1)[1].split()[0]
        for ref, digest in expected.items():
            raw = skopeo.inspect_raw(f"docker://{address}/rel/{ref}")
            assert sha256(raw) == digest, ref
        # read-only: a push into the served bundle is refused
        refused = skopeo.copy(f"dir:{generated.folder('alpine:3.19')}", f"docker://{address}/x:1", check=False)
        assert refused.returncode != 0
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert "stopped" in out


def test_pull_skopeo_sync_yaml_into_a_dir_tree(generated: Generated, secure: SecureRegistry, tmp_path: Path) -> None:
    expected = dir_digests(generated.dir_root)
    pushed = push_cli(
        generated.dir_root, f"{secure.host}/y", "--authfile", secure.authfile, "--cert-dir", secure.cert_dir
    )
    assert pushed.returncode == 0, pushed.stderr
    sync = tmp_path / "sync.yaml"
    sync.write_text(
        f"{secure.host}:\n"
        "  tls-verify: false\n"
        f"  credentials:\n    username: {USER}\n    password: {PASSWORD}\n"
        "  images:\n"
        "    y/alpine: ['3.19']\n"
        "    y/multi: []\n"
        "  images-by-tag-regex:\n"
        "    y/calico/node: ^v3\\.\n"
    )
    out = tmp_path / "tree"
    pulled = run_cli("pull", sync, "-o", out, "--jobs", "2")
    assert pulled.returncode == 0, pulled.stderr
    assert dir_digests(out) == {f"y/{r}": d for r, d in expected.items()}
    assert PASSWORD not in pulled.stdout + pulled.stderr
    inspected = run_cli("inspect", out, "--json")
    assert inspected.returncode == 0, inspected.stderr
    assert sorted(i["name"] for i in json.loads(inspected.stdout)["images"]) == sorted(f"y/{r}" for r in expected)


def test_serve_refuses_a_dir_tree_with_a_hint(generated: Generated) -> None:
    result = run_cli("serve", generated.dir_root)
    assert result.returncode == 1
    assert "regpack pack" in result.stderr and "Traceback" not in result.stderr


def test_dry_run_lists_destinations_and_contacts_nothing(generated: Generated) -> None:
    result = run_cli("push", generated.dir_root, "127.0.0.1:9/ns", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "would push calico/node:v3.15.1 -> docker://127.0.0.1:9/ns/calico/node:v3.15.1" in result.stdout


def test_a_killed_serve_takes_its_registry_along(generated: Generated) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-m", "regpack", "serve", str(generated.storage_root)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stdout is not None
    first = server.stdout.readline()
    host, port = first.split("http://", 1)[1].split()[0].split(":")
    socket.create_connection((host, int(port)), timeout=5).close()
    server.send_signal(signal.SIGKILL)
    server.communicate(timeout=30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
        except OSError:
            return
        time.sleep(0.1)
    pytest.fail("docker-registry still serves after regpack serve was killed")


def test_pull_one_platform_of_a_list(generated: Generated, secure: SecureRegistry, tmp_path: Path) -> None:
    pushed = push_cli(
        generated.dir_root, f"{secure.host}/p", "--authfile", secure.authfile, "--cert-dir", secure.cert_dir
    )
    assert pushed.returncode == 0, pushed.stderr
    index = json.loads((generated.folder("multi:1") / "manifest.json").read_text())
    arm64 = next(m["digest"] for m in index["manifests"] if m["platform"]["architecture"] == "arm64")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{secure.host}/p/multi:1\n")
    out = tmp_path / "tree"
    access = ("--authfile", secure.authfile, "--cert-dir", secure.cert_dir)
    pulled = run_cli("pull", listing, "-o", out, "--platform", "linux/arm64", *access)
    assert pulled.returncode == 0, pulled.stderr
    assert dir_digests(out) == {"p/multi:1": arm64}
    sources = json.loads((out / "regpack-sources.json").read_text())["images"]
    assert sources["p/multi:1"] == {
        "source": f"docker://{secure.host}/p/multi:1",
        "digest": arm64,
        "platform": "linux/arm64",
    }
    two = run_cli("pull", listing, "-o", tmp_path / "two", "--platform", "linux/amd64,linux/arm64", *access)
    assert two.returncode == 1 and "one OS/ARCH" in two.stderr


def test_serve_on_a_taken_port_quotes_the_registry(generated: Generated) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", generated.storage_root, "--port", str(port))
    assert result.returncode == 1
    assert f"127.0.0.1:{port}: bind: address already in use" in result.stderr and "Traceback" not in result.stderr


def test_push_takes_the_login_from_registry_auth_file(generated: Generated, secure: SecureRegistry) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "REGISTRY_AUTH_FILE": str(secure.authfile)}
    result = subprocess.run(
        [sys.executable, "-m", "regpack", "push", str(generated.dir_root), f"{secure.host}/env", "--cert-dir",
         str(secure.cert_dir)],
        capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "3 images: 3 pushed" in result.stdout


def test_push_takes_the_selection_options(generated: Generated, secure: SecureRegistry, skopeo: Skopeo) -> None:
    access = ("--authfile", secure.authfile, "--cert-dir", secure.cert_dir)
    result = push_cli(generated.dir_root, f"{secure.host}/sel", "--only", "calico/*", "--rename", "calico=cal", *access)
    assert result.returncode == 0, result.stderr
    assert "1 images: 1 pushed" in result.stdout
    assert "regpack: 2 left out (2 not selected)" in result.stderr
    digest = dir_digests(generated.dir_root)["calico/node:v3.15.1"]
    assert remote_digest(skopeo, secure, "sel/cal/node:v3.15.1") == digest
    assert not (secure.storage / "docker/registry/v2/repositories/sel/alpine").exists()


def test_a_failed_pull_names_the_image_and_the_rerun_fetches_only_the_rest(
    generated: Generated, secure: SecureRegistry, tmp_path: Path
) -> None:
    pushed = push_cli(
        generated.dir_root, f"{secure.host}/r", "--authfile", secure.authfile, "--cert-dir", secure.cert_dir
    )
    assert pushed.returncode == 0, pushed.stderr
    listing = tmp_path / "list.txt"
    refs = [f"{secure.host}/r/{ref}" for ref in sorted(dir_digests(generated.dir_root))]
    listing.write_text("\n".join([*refs, f"{secure.host}/r/missing:1"]) + "\n")
    storage = tmp_path / "storage"
    access = ("--authfile", secure.authfile, "--cert-dir", secure.cert_dir)
    failed = run_cli("pull", listing, "-o", storage, "--pack", *access)
    assert failed.returncode == 1
    assert f"r/missing:1 <- docker://{secure.host}/r/missing:1" in failed.stderr and "manifest unknown" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert not storage.exists()  # nothing half-packed; what arrived waits beside it
    assert (Path(f"{storage}.partial-pull") / "r/alpine:3.19" / "manifest.json").is_file()

    listing.write_text("\n".join(refs) + "\n")
    rerun = run_cli("pull", listing, "-o", storage, "--pack", *access)
    assert rerun.returncode == 0, rerun.stderr
    assert "3 images: 0 pulled, 3 already there, 0 failed" in rerun.stdout
    assert (storage / "docker/registry/v2/repositories/r/multi").is_dir()
    assert not Path(f"{storage}.partial-pull").exists()


@pytest.mark.parametrize("kind", ["storage-tar-split", "oci-gnu-tar"])
def test_push_an_archive_arrives_with_the_same_digests(
    kind: str, real_bundle: RealBundle, secure: SecureRegistry, skopeo: Skopeo, tmp_path: Path
) -> None:
    """An archive (regpack's split .tar of registry storage, or GNU tar of an OCI layout) is pushed through one
    extraction beside it, removed at the end; names and digests arrive as in the source."""
    if kind == "oci-gnu-tar":
        _, expected = source_of("oci", real_bundle)
        archive = tmp_path / "images.tar"
        subprocess.run(["tar", "-cf", str(archive), "-C", str(real_bundle.oci_layout), "."], check=True)
        name = archive
    else:
        _, expected = source_of("registry", real_bundle)
        archive = tmp_path / "release.tar"
        made = run_cli("pack", real_bundle.storage_root, "-o", archive, "--split", "64K", "--quiet")
        assert made.returncode == 0, made.stderr
        assert len(list(tmp_path.glob("release.tar.0*"))) > 1
        name = tmp_path / "release.tar.000"
    before = sorted(p.name for p in tmp_path.iterdir())
    first = push_cli(name, f"{secure.host}/ar", "--authfile", secure.authfile, "--cert-dir", secure.cert_dir)
    assert first.returncode == 0, first.stderr
    assert f"{len(expected)} images: {len(expected)} pushed, 0 already there, 0 failed" in first.stdout
    assert "extracted from the archive (each blob once)" in first.stdout
    for ref, digest in expected.items():
        assert remote_digest(skopeo, secure, f"ar/{ref}") == digest, ref
    assert (secure.storage / "docker/registry/v2/repositories/ar/a/b/c/_manifests").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # the extraction is gone
    again = push_cli(name, f"{secure.host}/ar", "--authfile", secure.authfile, "--cert-dir", secure.cert_dir)
    assert again.returncode == 0, again.stderr
    assert f"{len(expected)} images: 0 pushed, {len(expected)} already there, 0 failed" in again.stdout


def test_pull_into_an_archive_then_serve_the_archive(
    generated: Generated, secure: SecureRegistry, skopeo: Skopeo, tmp_path: Path
) -> None:
    expected = dir_digests(generated.dir_root)
    pushed = push_cli(
        generated.dir_root, f"{secure.host}/arc", "--authfile", secure.authfile, "--cert-dir", secure.cert_dir
    )
    assert pushed.returncode == 0, pushed.stderr
    listing = tmp_path / "release.txt"
    listing.write_text("".join(f"docker://{secure.host}/arc/{ref}\n" for ref in expected))
    access = ("--authfile", secure.authfile, "--cert-dir", secure.cert_dir)
    out = tmp_path / "out"
    out.mkdir()
    archive = out / "release.tar.zst"
    pulled = run_cli("pull", listing, "-o", archive, *access)
    assert pulled.returncode == 0, pulled.stderr
    assert f"{len(expected)} images: {len(expected)} pulled" in pulled.stdout
    assert "an archive of registry storage" in pulled.stdout
    # the archive, its checksum, and no second copy kept
    assert sorted(p.name for p in out.iterdir()) == ["release.tar.zst", "release.tar.zst.sha256"]
    plain = subprocess.run(["zstd", "-dc", str(archive)], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        names = set(tar.getnames())
        record = tar.extractfile("regpack-sources.json")
        assert record is not None
        sources = json.loads(record.read())["images"]
    assert "docker/registry/v2/repositories/arc/calico/node/_manifests/tags/v3.15.1/current/link" in names
    assert {name: entry["digest"] for name, entry in sources.items()} == {f"arc/{r}": d for r, d in expected.items()}
    verified = run_cli("verify", archive)
    assert verified.returncode == 0, verified.stderr

    # an archive is written new: a second pull into it is refused before anything is fetched
    again = run_cli("pull", listing, "-o", archive, *access)
    assert again.returncode == 1 and "already exists" in again.stderr and "Traceback" not in again.stderr
    assert not Path(f"{archive}.partial-pull").exists()

    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-m", "regpack", "serve", str(archive)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        extracting = server.stdout.readline()
        assert extracting.startswith("extracting "), extracting
        scratch = Path(extracting.split(" into ", 1)[1].split(" (", 1)[0])
        assert scratch.is_dir()
        serving = server.stdout.readline()
        assert "read-only at http://127.0.0.1:" in serving and str(archive) in serving, serving
        address = serving.split("http://", 1)[1].split()[0]
        for ref, digest in expected.items():
            assert sha256(skopeo.inspect_raw(f"docker://{address}/arc/{ref}")) == digest, ref
    finally:
        server.send_signal(signal.SIGTERM)
        stdout, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert "stopped" in stdout
    assert not scratch.exists()  # the extraction went with the server


def test_push_a_gnu_tar_of_a_dir_tree_with_big_layers(secure: SecureRegistry, skopeo: Skopeo, tmp_path: Path) -> None:
    """Layers bigger than what an archive's reading view keeps in memory reach skopeo with their real bytes."""
    tree = tmp_path / "tree"
    generate(tree, images=3, layers=2, blob_size=256 << 10, seed=11, lists=1)
    expected = dir_digests(tree)
    archive = tmp_path / "tree.tar"
    subprocess.run(["tar", "-cf", str(archive), "-C", str(tree), "."], check=True)
    pushed = push_cli(archive, f"{secure.host}/big", "--authfile", secure.authfile, "--cert-dir", secure.cert_dir)
    assert pushed.returncode == 0, pushed.stderr
    assert f"{len(expected)} images: {len(expected)} pushed" in pushed.stdout
    for ref, digest in expected.items():
        assert remote_digest(skopeo, secure, f"big/{ref}") == digest, ref


def test_the_next_serve_removes_what_a_killed_serve_extracted(generated: Generated, tmp_path: Path) -> None:
    archive = tmp_path / "bundle.tar"
    made = run_cli("pack", generated.storage_root, "-o", archive, "--quiet")
    assert made.returncode == 0, made.stderr
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    def start() -> tuple[subprocess.Popen[str], Path]:
        server = subprocess.Popen(
            [sys.executable, "-m", "regpack", "serve", str(archive)],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert server.stdout is not None
        scratch = Path(server.stdout.readline().split(" into ", 1)[1].split(" (", 1)[0])
        assert "read-only at http://127.0.0.1:" in server.stdout.readline()
        return server, scratch

    killed, left = start()
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=30)
    assert left.is_dir()
    second, scratch = start()
    try:
        assert not left.exists() and scratch.is_dir()
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=30)
    assert not scratch.exists()
