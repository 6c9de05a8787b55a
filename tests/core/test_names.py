from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from regpack.digest import Digest
from regpack.errors import BundleError
from regpack.names import Reference, parse_folder_reference, valid_repository, valid_tag


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("alpine:3.10.4", Reference("alpine", "3.10.4")),
        ("calico/node:v3.15.1", Reference("calico/node", "v3.15.1")),
        ("calico/kube-controllers/x:1", Reference("calico/kube-controllers/x", "1")),
        (
            "registry.example.com:5000/calico/node:v3.15.1",
            Reference("calico/node", "v3.15.1", host="registry.example.com:5000"),
        ),
        ("localhost/app:1", Reference("app", "1", host="localhost")),
        ("redis@sha256:" + "a" * 64, Reference("redis", None, Digest("sha256", "a" * 64))),
        ("plain", Reference("plain", "latest")),
    ],
)
def test_folder_references(folder: str, expected: Reference) -> None:
    assert parse_folder_reference(PurePosixPath(folder)) == expected


@pytest.mark.parametrize("folder", ["Alpine:1", "a/../b:1", "x:bad tag", "x:" + "t" * 200, "-x:1", "x:.1"])
def test_invalid_folder_names_are_refused(folder: str) -> None:
    with pytest.raises(BundleError):
        parse_folder_reference(PurePosixPath(folder) if ".." not in folder else PurePosixPath(*folder.split("/")))


def test_name_rules() -> None:
    assert valid_repository("a__b/c-d/e.f") and not valid_repository("a___b") and not valid_repository("a/")
    assert valid_tag("v1.0_rc-1") and not valid_tag(".v1") and not valid_tag("")
