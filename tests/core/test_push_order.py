"""Push sends the images bound for one repository one after another, and different repositories in parallel.

docker-registry 2.8 rewrites a repository's layer link files in place; a manifest put into that repository at the
same moment can read an empty link and fail ("digest invalid", "manifest blob unknown"). The fake skopeo below
counts copies in flight per destination repository: the first copy of each repository waits until every
repository has one in flight (so the pushes must run side by side across repositories), while the other copies of
its repository would overlap it if they were sent at once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from regpack.push import Status, Target, by_repository, push, repository_of
from regpack.transfer import Access
from tests.support.sample import ImageDir, make_config, make_layer, make_manifest, write_bundle

REPOSITORIES = ("app/one", "app/two", "lib")


def bundle(root: Path) -> Path:
    base = make_layer({"base": b"shared by every image"})
    images = []
    for repository in REPOSITORIES:
        for tag in ("1", "2", "3", "4"):
            own = make_layer({"own": f"{repository}:{tag}".encode()})
            cfg = make_config([base, own], cmd=[f"/{repository}/{tag}"])
            image = ImageDir(f"{repository}:{tag}", make_manifest(cfg, [base, own]))
            image.add(cfg, [base, own])
            images.append(image)
    return write_bundle(root, images)


class OneRepositoryAtATime:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self.started: set[str] = set()
        self.all_started = threading.Barrier(len(REPOSITORIES), timeout=20)
        self.copied: list[str] = []

    def inspect_raw(self, ref: str, access: Access, *, what: str, cancel: threading.Event | None = None) -> None:
        return None  # nothing there yet

    def copy(
        self,
        source: str,
        dest: str,
        *,
        src_access: Access,
        dest_access: Access,
        extra: Sequence[str] = (),
        what: str,
        cancel: threading.Event | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        repository = repository_of(dest)
        with self.lock:
            self.active[repository] += 1
            self.most[repository] = max(self.most[repository], self.active[repository])
            first = repository not in self.started
            self.started.add(repository)
        try:
            if first:
                self.all_started.wait()  # every repository has a copy in flight, or this times out
            else:
                time.sleep(0.01)
        finally:
            with self.lock:
                self.active[repository] -= 1
                self.copied.append(dest)


def test_one_repository_at_a_time_and_repositories_side_by_side(tmp_path: Path) -> None:
    skopeo = OneRepositoryAtATime()
    result = push(bundle(tmp_path / "src"), Target("127.0.0.1:5000", "site"), jobs=4, skopeo=skopeo)  # type: ignore[arg-type]
    assert result.ok, [o.reason for o in result.outcomes]
    assert [o.status for o in result.outcomes] == [Status.PUSHED] * 12
    assert [o.image for o in result.outcomes] == sorted(f"{r}:{t}" for r in REPOSITORIES for t in "1234")
    assert skopeo.most == Counter({f"127.0.0.1:5000/site/{r}": 1 for r in REPOSITORIES})
    assert len(skopeo.copied) == 12


def test_repository_of_a_destination() -> None:
    assert repository_of("docker://h:5000/a/b:1.0") == "h:5000/a/b"
    assert repository_of("docker://h:5000/a/b@sha256:" + "0" * 64) == "h:5000/a/b"
    assert repository_of("docker://localhost:5000/x") == "localhost:5000/x"
    assert repository_of("docker://registry.example/x:latest") == "registry.example/x"


def test_groups_keep_name_order_and_put_the_largest_first() -> None:
    work = [(object(), f"docker://h/{name}") for name in ("a:1", "b:1", "b:2", "c:1", "c:2", "c:3")]
    groups = by_repository(work)  # type: ignore[arg-type]
    assert [[dest for _, dest in group] for group in groups] == [
        ["docker://h/c:1", "docker://h/c:2", "docker://h/c:3"],
        ["docker://h/b:1", "docker://h/b:2"],
        ["docker://h/a:1"],
    ]
