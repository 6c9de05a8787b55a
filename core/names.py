"""Repository names, tags and image references: validation and parsing of skopeo dir folder names.

Names and tags become path components on the destination, so validation here is also what keeps a hostile
bundle from writing outside it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from regpack.digest import Digest
from regpack.errors import BundleError

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
MAX_NAME = 255


def valid_repository(name: str) -> bool:
    return 0 < len(name) <= MAX_NAME and all(_COMPONENT.fullmatch(c) for c in name.split("/"))


def valid_tag(tag: str) -> bool:
    return _TAG.fullmatch(tag) is not None


def check_tag(tag: str, where: Path | str | None = None, image: str | None = None) -> str:
    if not valid_tag(tag):
        raise BundleError(f"invalid tag {tag[:200]!r} (allowed: [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})", where, image)
    return tag


def _looks_like_host(component: str) -> bool:
    # Docker's rule: a first component with a dot or a port, or "localhost", is a registry host.
    return "." in component or ":" in component or component == "localhost"


@dataclass(frozen=True, order=True, slots=True)
class Reference:
    """Where an image lives: repository plus a tag or a digest; ``host`` only when the bundle was scoped."""

    repository: str
    tag: str | None = None
    digest: Digest | None = None
    host: str = ""

    def __str__(self) -> str:
        if self.tag is not None:
            return f"{self.repository}:{self.tag}"
        if self.digest is not None:
            return f"{self.repository}@{self.digest}"
        return self.repository

    @property
    def folder(self) -> PurePosixPath:
        """The relative folder this reference has in a skopeo dir tree (host prefix kept when scoped)."""
        head = f"{self.host}/" if self.host else ""
        return PurePosixPath(head + str(self))


def parse_folder_reference(relative: PurePosixPath, where: Path | str | None = None) -> Reference:
    """Reference of an image folder from its path under the bundle root.

    ``calico/node:v3.15.1`` -> calico/node tag v3.15.1; ``registry.example.com:5000/calico/node:v1`` (skopeo
    sync --scoped) keeps the host apart; ``redis@sha256:<hex>`` is a digest reference; no tag means latest.
    """
    parts = list(relative.parts)
    if not parts or any(p in ("", ".", "..") for p in parts):
        raise BundleError(f"image folder {str(relative)!r} has an empty, '.' or '..' path component", where)
    host = ""
    if len(parts) > 1 and _looks_like_host(parts[0]):
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
            f"folder name does not give a valid repository: {repository[:300]!r} "
            "(expected <repository>:<tag> with lowercase [a-z0-9._-] components)",
            where,
        )
    if tag is not None:
        check_tag(tag, where)
    return Reference(repository, tag, digest, host)


def parse_reference(text: str, where: Path | str | None = None) -> Reference:
    """Parse ``[host/]repo[:tag]`` or ``repo@digest`` as found in OCI ``ref.name`` annotations.

    The raw text is checked before it becomes a path: ``a/./b`` or ``a//b`` must be refused, not normalised.
    """
    parts = text.split("/")
    if not text or any(p in ("", ".", "..") for p in parts):
        raise BundleError(f"reference {text[:300]!r} has an empty, '.' or '..' path component", where)
    return parse_folder_reference(PurePosixPath(text), where)
