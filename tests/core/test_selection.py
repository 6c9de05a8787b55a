"""Naming and selection: which images a job carries, under which names, and the refusals when two images
would land in one place."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regpack import layouts
from regpack.bundle import Layout
from regpack.errors import BundleError, quoted
from regpack.jobs import pack, unpack
from regpack.names import Reference, parse_folder_reference, unpack_folder, valid_repository
from regpack.selection import Reason, Rename, Selection, matches, select
from tests.support import ocibuild as ob

ROOT = Path(__file__).resolve().parents[2]


def regpack(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "regpack", *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


BASE = ob.layer(ob.text_files("sel-base"))
ALPINE = ob.image([BASE, ob.layer(ob.text_files("sel-alpine"))])
MIRRORED = ob.image([BASE, ob.layer(ob.text_files("sel-mirrored"))])
TOOLS = ob.image([BASE, ob.layer(ob.text_files("sel-tools"))])


def names(root: Path) -> set[tuple[str, str | None, str]]:
    """(repository, tag, manifest digest) of every image of a bundle, as a registry would serve them."""
    bundle = layouts.read(root).check()
    return {(i.repository, i.tag, str(i.digest)) for i in bundle.images}


def stored_names(root: Path) -> set[str]:
    return {i.reference.stored for i in layouts.read(root).check().images}


# --- names --------------------------------------------------------------------------------------------------


def test_quoted_shows_bytes_and_text_without_python_reprs() -> None:
    assert quoted(b"sha256:ab\n") == '"sha256:ab\\n"'
    assert quoted(b"\xff\x00") == '"\\xff\\x00"'
    assert quoted("x" * 10, 4) == '"xxxx..."'
    assert quoted("a\udcffb\ud800") == '"a\\xffb\\ud800"'
    for text in (quoted(b"abc"), quoted("abc")):
        assert not text.startswith(("b'", "'"))


@pytest.mark.parametrize(
    ("repository", "folder"),
    [
        ("alpine", "alpine:1"),
        ("calico/node", "calico/node:1"),
        ("foo.bar", "foo.bar:1"),  # one level: nothing else could be the repository
        ("foo.bar/app", "localhost/foo.bar/app:1"),
        ("localhost/app", "localhost/localhost/app:1"),
        ("localhost", "localhost:1"),
        ("docker.io/x", "localhost/docker.io/x:1"),
    ],
)
def test_unpack_folders_read_back_as_the_same_repository(repository: str, folder: str) -> None:
    ref = Reference(repository, "1")
    assert unpack_folder(ref) == folder
    back = parse_folder_reference(Path(folder))
    assert (back.repository, back.tag) == (repository, "1")


def test_docker_hub_short_names_are_stored_under_library() -> None:
    ref = parse_folder_reference(Path("docker.io/alpine:3"))
    assert (ref.host, ref.repository, ref.stored, str(ref)) == ("docker.io", "library/alpine", "library/alpine:3",
                                                               "docker.io/library/alpine:3")  # fmt: skip
    assert parse_folder_reference(Path("quay.io/alpine:3")).repository == "alpine"


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("alpine", "alpine:3.19", True),
        ("alpine", "alpine@sha256:" + "a" * 64, True),
        ("alpine:3.*", "alpine:3.19", True),
        ("alpine:3.*", "alpine:4", False),
        ("alpine:3.*", "alpine@sha256:" + "a" * 64, False),
        ("calico/*", "calico/node:v1", True),
        ("calico/*", "calico:v1", False),
        ("library/alpine", "docker.io/library/alpine:3", True),  # with or without its host
        ("docker.io/library/*", "docker.io/library/alpine:3", True),
        ("docker.io/library/*", "mirror.example.com:5000/library/alpine:3", False),
        ("mirror.example.com:5000/*", "mirror.example.com:5000/library/alpine:3", True),
        ("mirror.example.com:5000/library/alpine:3", "mirror.example.com:5000/library/alpine:3", True),
        ("redis@sha256:a*", "redis@sha256:" + "a" * 64, True),
        ("*", "anything/at/all:1", True),
    ],
)
def test_patterns(pattern: str, name: str, expected: bool) -> None:
    assert matches(pattern, name) is expected


def test_rename_parsing() -> None:
    assert Rename.parse("mirror.example.com:5000/library=mirror/library") == Rename(
        "mirror.example.com:5000/library", "mirror/library"
    )
    assert Rename.parse("docker.io/library=") == Rename("docker.io/library", "")
    for bad in ("nothing", "=x", "a=Upper", "a//b=c", "a=quay.io:5000/x"):
        with pytest.raises(ValueError):
            Rename.parse(bad)
    with pytest.raises(ValueError, match="twice"):
        Selection(renames=(Rename("a", "b"), Rename("a", "c")))


# --- collisions and renames, through the jobs -------------------------------------------------------------


@pytest.fixture
def two_hosts(tmp_path: Path) -> Path:
    """A scoped tree (as ``skopeo sync --scoped`` writes one) with one image name on two registries."""
    root = tmp_path / "scoped"
    ob.write_dir_image(root / "docker.io/library/alpine:3.10", ALPINE)
    ob.write_dir_image(root / "mirror.example.com:5000/library/alpine:3.10", MIRRORED)
    ob.write_dir_image(root / "mirror.example.com:5000/team/tools:1", TOOLS)
    return root


@pytest.mark.parametrize("job", [pack, unpack])
def test_two_images_for_one_destination_are_refused_naming_both(two_hosts: Path, tmp_path: Path, job: object) -> None:
    dest = tmp_path / "out"
    with pytest.raises(BundleError) as caught:
        job(two_hosts, dest)  # type: ignore[operator]
    message = str(caught.value)
    assert "docker.io/library/alpine:3.10" in message
    assert "mirror.example.com:5000/library/alpine:3.10" in message
    assert "library/alpine:3.10" in message and "--rename" in message and "--exclude" in message
    assert caught.value.code == "collision"
    assert not dest.exists() and list(tmp_path.iterdir()) == [two_hosts]  # nothing written, not even staging


def test_the_same_clash_in_an_oci_layout_is_refused(tmp_path: Path) -> None:
    layout = ob.write_oci_layout(tmp_path / "oci", [("quay.io/team/app:1", ALPINE), ("ghcr.io/team/app:1", TOOLS)])
    run = regpack("unpack", layout, "-o", tmp_path / "out")
    assert run.returncode == 1
    assert (
        "quay.io/team/app:1" in run.stderr and "ghcr.io/team/app:1" in run.stderr and "folder team/app:1/" in run.stderr
    )
    assert not (tmp_path / "out").exists()


def test_rename_resolves_the_clash(two_hosts: Path, tmp_path: Path) -> None:
    selection = Selection(renames=(Rename.parse("mirror.example.com:5000/library=mirror/library"),))
    result = pack(two_hosts, tmp_path / "packed", selection=selection)
    assert result.images == 3 and result.left_out == ()
    assert names(tmp_path / "packed") == {
        ("library/alpine", "3.10", ALPINE.digest),
        ("mirror/library/alpine", "3.10", MIRRORED.digest),
        ("team/tools", "1", TOOLS.digest),  # the host is dropped: registry storage has none
    }
    unpack(two_hosts, tmp_path / "unpacked", selection=selection)
    assert stored_names(tmp_path / "unpacked") == {"library/alpine:3.10", "mirror/library/alpine:3.10", "team/tools:1"}


def test_rename_takes_the_longest_prefix_and_whole_components(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    for ref, art in (("team/app:1", ALPINE), ("team/app/sub:1", MIRRORED), ("teamx/app:1", TOOLS)):
        ob.write_dir_image(root / ref, art)
    selection = Selection(renames=(Rename("team", "org"), Rename("team/app", "apps/main")))
    pack(root, tmp_path / "out", selection=selection)
    assert stored_names(tmp_path / "out") == {"apps/main:1", "apps/main/sub:1", "teamx/app:1"}


@pytest.fixture
def clash_by_rename(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    ob.write_dir_image(root / "a/app:1", ALPINE)
    ob.write_dir_image(root / "b/app:1", TOOLS)
    return root


def test_a_rename_that_makes_a_clash_names_both_images_by_their_source_names(
    clash_by_rename: Path, tmp_path: Path
) -> None:
    with pytest.raises(BundleError) as caught:
        unpack(clash_by_rename, tmp_path / "out", selection=Selection(renames=(Rename("b", "a"),)))
    assert "images a/app:1 and b/app:1 would both become folder a/app:1/" in str(caught.value)


# --- --only / --exclude / --skip-broken ---------------------------------------------------------------------


@pytest.fixture
def with_broken(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    ob.write_dir_image(root / "good:1", ALPINE)
    ob.write_dir_image(root / "team/tools:1", TOOLS)
    broken = ob.write_dir_image(root / "broken:1", MIRRORED)
    (broken / MIRRORED.blobs()[-1].hex).unlink()
    return root


def test_a_broken_image_is_refused_by_default(with_broken: Path, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="image broken:1"):
        pack(with_broken, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_skip_broken_carries_the_rest_and_lists_what_it_left_out(with_broken: Path, tmp_path: Path) -> None:
    result = pack(with_broken, tmp_path / "out", selection=Selection(skip_broken=True))
    assert stored_names(tmp_path / "out") == {"good:1", "team/tools:1"}
    assert [(x.name, x.reason) for x in result.left_out] == [("broken:1", Reason.BROKEN)]
    assert "missing" in result.left_out[0].detail


def test_skip_broken_hashes_the_source_so_a_corrupt_blob_is_left_out_too(with_broken: Path, tmp_path: Path) -> None:
    blob = with_broken / "team/tools:1" / TOOLS.blobs()[-1].hex
    blob.write_bytes(blob.read_bytes()[:-1] + b"X")  # same size: only hashing sees it
    result = pack(with_broken, tmp_path / "out", selection=Selection(skip_broken=True))
    assert stored_names(tmp_path / "out") == {"good:1"}
    assert {x.name for x in result.left_out} == {"broken:1", "team/tools:1"}
    assert "hashes to" in next(x.detail for x in result.left_out if x.name == "team/tools:1")


def test_excluding_the_broken_image_is_enough(with_broken: Path, tmp_path: Path) -> None:
    result = unpack(with_broken, tmp_path / "out", selection=Selection(exclude=("broken",)))
    assert stored_names(tmp_path / "out") == {"good:1", "team/tools:1"}
    assert [(x.name, x.reason) for x in result.left_out] == [("broken:1", Reason.EXCLUDED)]


def test_only_selects_by_repository_glob_and_tag(with_broken: Path, tmp_path: Path) -> None:
    pack(with_broken, tmp_path / "a", selection=Selection(only=("team/*",)))
    assert stored_names(tmp_path / "a") == {"team/tools:1"}
    pack(with_broken, tmp_path / "b", selection=Selection(only=("good:1", "team/tools:*")))
    assert stored_names(tmp_path / "b") == {"good:1", "team/tools:1"}


def test_a_selection_that_leaves_nothing_is_an_error(with_broken: Path, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no image left"):
        pack(with_broken, tmp_path / "out", selection=Selection(only=("nothing-like-this",)))


def test_select_keeps_the_bundle_problems_that_belong_to_no_image(with_broken: Path) -> None:
    bundle = layouts.read(with_broken)
    bundle.problem("cannot list folder: Permission denied", with_broken / "x", code="unreadable")
    chosen = select(bundle, Selection(skip_broken=True))
    assert [p.reason for p in chosen.bundle.errors] == ["cannot list folder: Permission denied"]
    assert {i.name for i in chosen.bundle.images} == {"good:1", "team/tools:1"}


def test_cli_selection_options_and_left_out_report(with_broken: Path, tmp_path: Path) -> None:
    help_text = regpack("pack", "--help").stdout
    assert "selection:" in help_text and "--skip-broken" in help_text and "--rename FROM=TO" in help_text
    run = regpack("pack", with_broken, "-o", tmp_path / "out", "--skip-broken", "--exclude", "team/*", "-q")
    assert run.returncode == 0, run.stderr
    assert "left out broken:1: " in run.stderr and "2 left out (1 excluded, 1 broken)" in run.stderr
    assert "packed 1 images" in run.stdout
    bad = regpack("pack", with_broken, "-o", tmp_path / "x", "--rename", "nothing")
    assert bad.returncode == 2 and 'expected FROM=TO, got "nothing"' in bad.stderr


# --- containerd exports -----------------------------------------------------------------------------------


def test_containerd_names_are_read_from_their_annotation(tmp_path: Path) -> None:
    layout = ob.write_containerd_export(
        tmp_path / "export",
        [
            ("docker.io/library/alpine:3.18", ALPINE),
            ("docker.io/library/alpine:latest", ALPINE),
            ("registry.example.com:5000/team/tools:1.0", TOOLS),
            (f"docker.io/library/redis@{MIRRORED.digest}", MIRRORED),
        ],
    )
    bundle = layouts.read(layout).check()
    assert bundle.layout is Layout.OCI
    assert [i.name for i in bundle.images] == [
        "docker.io/library/alpine:3.18",
        "docker.io/library/alpine:latest",
        "registry.example.com:5000/team/tools:1.0",
        f"docker.io/library/redis@{MIRRORED.digest}",
    ]
    pack(layout, tmp_path / "packed")
    assert stored_names(tmp_path / "packed") == {
        "library/alpine:3.18",
        "library/alpine:latest",
        "team/tools:1.0",
        f"library/redis@{MIRRORED.digest}",
    }


def test_a_containerd_name_pinning_another_digest_is_named(tmp_path: Path) -> None:
    layout = ob.write_containerd_export(tmp_path / "export", [(f"docker.io/library/alpine:3@{TOOLS.digest}", ALPINE)])
    run = regpack("inspect", layout)
    assert run.returncode == 1
    assert "io.containerd.image.name" in run.stderr and TOOLS.digest in run.stderr and "index.json" in run.stderr


# --- messages -----------------------------------------------------------------------------------------------


def test_a_bad_link_file_is_a_repository_problem_without_python_reprs(tmp_path: Path) -> None:
    storage = ob.write_registry_storage(tmp_path / "s", {"app:1": ALPINE})
    layer_links = storage / "docker/registry/v2/repositories/app/_layers/sha256"
    link = next(layer_links.iterdir()) / "link"
    link.write_bytes(b"sha256:nonsense\x00")
    run = regpack("verify", storage)
    assert run.returncode == 1
    assert "FAILED  repository app\n" in run.stdout and '"sha256:nonsense\\x00"' in run.stdout
    assert "b'" not in run.stdout + run.stderr
    report = json.loads(regpack("verify", storage, "--json").stdout)
    assert any(f.get("repository") == "app" for f in report["bundle_findings"])


def test_failed_output_verification_names_the_destination_not_the_staging_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import regpack.engine as engine

    tree = tmp_path / "tree"
    ob.write_dir_image(tree / "app:1", ALPINE)
    real_run_ops = engine._run_ops

    def corrupting(root: str, *args: object, **kwargs: object) -> tuple[int, int]:
        out = real_run_ops(root, *args, **kwargs)  # type: ignore[arg-type]
        blob = Path(root) / "app:1" / ALPINE.blobs()[-1].hex
        blob.unlink()
        blob.write_bytes(b"x" * ALPINE.blobs()[-1].size)
        return out

    monkeypatch.setattr(engine, "_run_ops", corrupting)
    dest = tmp_path / "out"
    with pytest.raises(BundleError) as caught:
        unpack(tree, dest, verify=True, copy=True)
    assert caught.value.path == dest / "app:1" / ALPINE.blobs()[-1].hex
    assert ".partial-" not in str(caught.value) and not dest.exists()


# --- round trip over repository names ---------------------------------------------------------------------

component = st.from_regex(r"[a-z0-9]{1,5}(?:(?:\.|_|__|-{1,2})[a-z0-9]{1,5}){0,2}", fullmatch=True)
first_component = st.one_of(component, st.just("localhost"), st.just("docker.io"), st.just("foo.bar"))
repository = st.builds(lambda first, rest: "/".join([first, *rest]), first_component, st.lists(component, max_size=3))
tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,12}", fullmatch=True)


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="regpack-names-") as d:
        yield Path(d)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    images=st.dictionaries(repository.filter(valid_repository), st.tuples(tag, st.booleans()), min_size=1, max_size=4)
)
def test_unpack_then_pack_gives_back_every_repository_tag_and_digest(
    work: Path, images: dict[str, tuple[str, bool]]
) -> None:
    case = Path(tempfile.mkdtemp(dir=work))
    arts = [ALPINE, TOOLS, MIRRORED]
    refs = {f"{repo}:{t}": arts[i % 3] for i, (repo, (t, _)) in enumerate(images.items())}
    storage = ob.write_registry_storage(case / "x", refs)
    for repo, (_, untagged) in images.items():
        if untagged:  # a revision no tag names: it travels as <repository>@sha256:<hex>
            shutil.rmtree(storage / "docker/registry/v2/repositories" / repo / "_manifests/tags")
    before = names(storage)
    unpack(storage, case / "d")
    pack(case / "d", case / "s2")
    assert names(case / "s2") == before
    shutil.rmtree(case)


def test_a_write_error_names_the_destination_not_the_staging_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    import regpack.engine as engine

    tree = tmp_path / "tree"
    ob.write_dir_image(tree / "app:1", ALPINE)
    real_open = os.open

    def failing_open(path: str, flags: int, mode: int = 0o777, **kwargs: object) -> int:
        if ".partial-" in str(path) and str(path).endswith("/app:1/version"):  # writing, not reading
            raise OSError(errno.EIO, "Input/output error", path)
        return real_open(path, flags, mode, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(engine.os, "open", failing_open)
    dest = tmp_path / "out"
    with pytest.raises(BundleError) as caught:
        unpack(tree, dest)
    assert caught.value.path == dest / "app:1" / "version"
    assert ".partial-" not in str(caught.value) and not dest.exists()


def test_a_plan_refuses_a_second_claim_on_one_file_with_other_content() -> None:
    from regpack.plan import Plan

    plan = Plan()
    plan.place("/src/a", "app:1/manifest.json", 10, "a/app:1")
    plan.place("/src/b", "app:1/manifest.json", 10, "b/app:1")  # one digest, one size: a shared blob
    with pytest.raises(BundleError, match="two images claim it"):
        plan.place("/src/c", "app:1/manifest.json", 12, "c/app:1")
