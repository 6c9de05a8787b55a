"""Repository names, tags and image references: validation and parsing of skopeo dir folder names.

Names and tags become path components on the destination, so validation here is also what keeps a hostile
bundle from writing outside it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from regpack.digest import Digest
from regpack.errors import BundleError, quoted

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
MAX_NAME = 255


def valid_repository(name: str) -> bool:
    return 0 < len(name) <= MAX_NAME and all(_COMPONENT.fullmatch(c) for c in name.split("/"))


def valid_tag(tag: str) -> bool:
    return _TAG.fullmatch(tag) is not None


def check_tag(tag: str, where: Path | str | None = None, image: str | None = None) -> str:
    if not valid_tag(tag):
        raise BundleError(
            f"invalid tag {quoted(tag, 200)} (allowed: [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})", where, image
        )
    return tag


def looks_like_host(component: str) -> bool:
    """Docker's rule: a first component with a dot or a port, or "localhost", names a registry host."""
    return "." in component or ":" in component or component == "localhost"


# Docker Hub's own names for itself; a one-level repository there is an official image under library/.
DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")
# The host an unpacked tree puts in front of a repository whose first component would read as a host.
UNPACK_HOST = "localhost"


def normalise(host: str, repository: str) -> str:
    """The repository as a registry stores it: ``docker.io/alpine`` is ``library/alpine`` on Docker Hub."""
    if host in DOCKER_HUB and "/" not in repository:
        return f"library/{repository}"
    return repository


@dataclass(frozen=True, order=True, slots=True)
class Reference:
    """Where an image lives: repository plus a tag or a digest; ``host`` only when the source names one
    (a scoped skopeo dir tree, a full name in an OCI layout). Registry storage has no host: packing drops it."""

    repository: str
    tag: str | None = None
    digest: Digest | None = None
    host: str = ""

    def __str__(self) -> str:
        return f"{self.host}/{self.stored}" if self.host else self.stored

    @property
    def stored(self) -> str:
        """``repository:tag`` or ``repository@digest``: the name in registry storage, without the host."""
        if self.tag is not None:
            return f"{self.repository}:{self.tag}"
        if self.digest is not None:
            return f"{self.repository}@{self.digest}"
        return self.repository

    @property
    def full_repository(self) -> str:
        """The repository with its host in front when there is one: what selection patterns match."""
        return f"{self.host}/{self.repository}" if self.host else self.repository

    @property
    def folder(self) -> PurePosixPath:
        """The relative folder this reference has in a skopeo dir tree (host prefix kept when scoped)."""
        return PurePosixPath(str(self))


def unpack_folder(reference: Reference) -> str:
    """The folder of an image in a tree regpack unpacks: ``<repository>:<tag>`` or ``<repository>@<digest>``,
    never a host. A repository whose first component would read as a host (``foo.bar/app``, ``localhost/app``)
    goes below ``localhost/``, which reads back as that host plus the whole repository, so that unpacking
    and packing again gives every repository back unchanged."""
    stored = reference.stored
    first, slash, _ = reference.repository.partition("/")
    return f"{UNPACK_HOST}/{stored}" if slash and looks_like_host(first) else stored


def parse_folder_reference(relative: PurePosixPath | str, where: Path | str | None = None) -> Reference:
    """Reference of an image folder from its path under the bundle root.

    ``calico/node:v3.15.1`` -> calico/node tag v3.15.1; ``registry.example.com:5000/calico/node:v1`` (skopeo
    sync --scoped) keeps the host apart; ``redis@sha256:<hex>`` is a digest reference; no tag means latest.
    The first of several components is a host when it looks like one (Docker's rule, see looks_like_host).
    """
    parts = relative.split("/") if isinstance(relative, str) else list(relative.parts)
    if not parts or any(p in ("", ".", "..") for p in parts):
        raise BundleError(f"image folder {quoted(str(relative), 300)} has an empty, '.' or '..' path component", where)
    host = ""
    if len(parts) > 1 and looks_like_host(parts[0]):
        host = parts.pop(0)
    last = parts[-1]
    tag: str | None = None
    digest: Digest | None = None
    if "@" in last:
        name, _, digest_text = last.partition("@")
        digest = Digest.parse(digest_text, where)
    elif ":" in last:
        name, _, tag = last.rpartition(":")
    else:
        name, tag = last, "latest"
    repository = "/".join([*parts[:-1], name])
    if not valid_repository(repository):
        raise BundleError(
            f"folder name does not give a valid repository: {quoted(repository, 300)} "
            "(expected <repository>:<tag> with lowercase [a-z0-9._-] components)",
            where,
        )
    if tag is not None:
        check_tag(tag, where)
    repository = normalise(host, repository)
    if not valid_repository(repository):
        raise BundleError(f"repository name {quoted(repository, 300)} is too long", where)
    return Reference(repository, tag, digest, host)


def parse_reference(text: str, where: Path | str | None = None) -> Reference:
    """Parse ``[host/]repo[:tag]`` or ``repo@digest`` as found in OCI ``ref.name`` annotations.

    The raw text is checked before it becomes a path: ``a/./b`` or ``a//b`` must be refused, not normalised.
    """
    parts = text.split("/")
    if not text or any(p in ("", ".", "..") for p in parts):
        raise BundleError(f"reference {quoted(text, 300)} has an empty, '.' or '..' path component", where)
    return parse_folder_reference(PurePosixPath(text), where)
