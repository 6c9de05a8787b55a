"""Which images of a bundle a job carries, and under which names (--only, --exclude, --rename, --skip-broken).

A Selection is a plain value; ``select`` applies it to a Bundle and returns the selected Bundle plus what was
left out and why, so that every command taking a bundle gives these options one meaning. Patterns and rename
prefixes match the names ``regpack inspect`` lists: the source's own names, host included when it has one.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from regpack.bundle import Bundle, Image
from regpack.digest import Digest
from regpack.errors import BundleError, Code, quoted
from regpack.names import Reference, looks_like_host, valid_repository


class Reason(StrEnum):
    EXCLUDED = "excluded"  # matched --exclude
    NOT_SELECTED = "not selected"  # matched no --only
    BROKEN = "broken"  # left out by --skip-broken


@dataclass(frozen=True, slots=True)
class LeftOut:
    """An image (or a repository of registry storage) a job did not carry, and why."""

    name: str
    reason: Reason
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.name} ({self.reason.value}{': ' + self.detail if self.detail else ''})"


@dataclass(frozen=True, slots=True)
class Rename:
    """``FROM=TO``: a repository starting with the components of ``source`` gets ``target`` in their place."""

    source: str
    target: str

    @staticmethod
    def parse(text: str) -> Rename:
        """Parse ``FROM=TO``; ValueError with a message for the user when it is not one."""
        source, eq, target = text.partition("=")
        source, target = source.strip("/"), target.strip("/")
        if not eq or not source:
            raise ValueError(f"expected FROM=TO, got {quoted(text)}")
        if any(part in ("", ".", "..") for part in source.split("/")):
            raise ValueError(f"FROM has an empty, '.' or '..' component: {quoted(source)}")
        if target and not valid_repository(target):
            raise ValueError(
                f"TO is not a repository name: {quoted(target)} (lowercase [a-z0-9] components joined by . _ __ - "
                "and /; registry storage has no host, so TO names no host)"
            )
        return Rename(source, target)

    def matches(self, repository: str) -> bool:
        return repository == self.source or repository.startswith(self.source + "/")

    def __str__(self) -> str:
        return f"{self.source}={self.target}"


@dataclass(frozen=True, slots=True)
class Selection:
    only: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    renames: tuple[Rename, ...] = ()
    skip_broken: bool = False

    def __post_init__(self) -> None:
        for pattern in (*self.only, *self.exclude):
            if not pattern:
                raise ValueError("an empty image pattern selects nothing")
        sources = [r.source for r in self.renames]
        for source in sources:
            if sources.count(source) > 1:
                raise ValueError(f"--rename {source}=... is given twice")

    @property
    def filters(self) -> bool:
        return bool(self.only or self.exclude)

    def reason_to_leave_out(self, name: str) -> Reason | None:
        """Why the image named ``name`` is not carried (None: it is), by --only and --exclude."""
        if self.only and not any(matches(p, name) for p in self.only):
            return Reason.NOT_SELECTED
        if any(matches(p, name) for p in self.exclude):
            return Reason.EXCLUDED
        return None

    def rename(self, image: Image) -> Image:
        """The image under its new name; the longest matching FROM wins. BundleError when the result is not a
        valid repository."""
        ref = image.reference
        candidates = [(r, ref.full_repository) for r in self.renames if r.matches(ref.full_repository)]
        if ref.host:
            candidates += [(r, ref.repository) for r in self.renames if r.matches(ref.repository)]
        if not candidates:
            return image
        rule, repository = max(candidates, key=lambda c: len(c[0].source))
        rest = repository[len(rule.source) :].lstrip("/")
        renamed = "/".join(x for x in (rule.target, rest) if x)
        if not valid_repository(renamed):
            raise BundleError(
                f"--rename {rule} gives {quoted(renamed or '(nothing)', 300)}, not a valid repository name",
                image.folder,
                image.name,
                code=Code.BAD_NAME,
            )
        return replace(image, reference=Reference(renamed, ref.tag, ref.digest), origin=image.source_name)


@dataclass(frozen=True, slots=True)
class Selected:
    bundle: Bundle
    left_out: tuple[LeftOut, ...] = ()

    def count(self, reason: Reason) -> int:
        return sum(1 for x in self.left_out if x.reason is reason)


def _split(name: str) -> tuple[str, str, str | None]:
    """``[host/]repo[:tag|@digest]`` -> (repository with host, repository without host, tag or None)."""
    head, slash, last = name.rpartition("/")
    tag: str | None = None
    if "@" in last:
        last = last.partition("@")[0]
    elif ":" in last:
        last, _, tag = last.rpartition(":")
    full = f"{head}{slash}{last}"
    first, sep, rest = full.partition("/")
    bare = rest if sep and looks_like_host(first) else full
    return full, bare, tag


def matches(pattern: str, name: str) -> bool:
    """Whether an image pattern matches an image name (as inspect lists it).

    A pattern is a shell-style glob (``*`` also matches ``/``) over the repository, with or without its host
    (``calico/*``, ``docker.io/library/*``); ``PATTERN:TAG`` also requires the tag to match (``alpine:3.*``);
    a pattern holding ``@`` is matched against the whole name (``redis@sha256:*``).
    """
    if "@" in pattern:
        return fnmatch.fnmatchcase(name, pattern)
    full, bare, tag = _split(name)
    repo_pattern, tag_pattern = pattern, None
    head, slash, last = pattern.rpartition("/")
    if ":" in last:
        last, _, tag_pattern = last.rpartition(":")
        repo_pattern = f"{head}{slash}{last}"
    if tag_pattern is not None and (tag is None or not fnmatch.fnmatchcase(tag, tag_pattern)):
        return False
    return fnmatch.fnmatchcase(full, repo_pattern) or fnmatch.fnmatchcase(bare, repo_pattern)


def select(bundle: Bundle, selection: Selection, broken: Mapping[str, str] | None = None) -> Selected:
    """The images of ``bundle`` that ``selection`` carries, renamed, plus what was left out and why.

    Reading problems of images left out go with them. With ``skip_broken``, an image with an error (from
    reading, or named in ``broken``: image name -> reason, e.g. from hashing) is left out too, and an image of
    a registry repository with an error of its own; errors of the bundle as a whole stay, so ``check()`` still
    refuses it. Without ``skip_broken`` every error stays.
    """
    if not (selection.filters or selection.renames or selection.skip_broken):
        return Selected(bundle)  # everything, as read: errors stay for check() to refuse
    broken = dict(broken or {})
    left: dict[str, LeftOut] = {}
    problem_of: dict[str, str] = {}
    repo_problem: dict[str, str] = {}
    for p in bundle.errors:
        if p.image is not None:
            problem_of.setdefault(p.image, p.reason)
        elif p.repository is not None:
            repo_problem.setdefault(p.repository, f"repository {p.repository}: {p.reason}")
    for name, text in broken.items():
        problem_of.setdefault(name, text)

    kept: list[Image] = []
    for image in bundle.images:
        name = image.name
        why = selection.reason_to_leave_out(name)
        if why is not None:
            left[name] = LeftOut(name, why)
            continue
        if selection.skip_broken and (name in problem_of or image.repository in repo_problem):
            detail = problem_of.get(name) or repo_problem[image.repository]
            left[name] = LeftOut(name, Reason.BROKEN, detail)
            continue
        kept.append(image)
    kept_names = {image.name for image in kept}
    # Images that could not be read at all have problems but no Image: a filter or --skip-broken takes them out.
    for name, reason_text in problem_of.items():
        if name in left or name in kept_names:
            continue
        why = selection.reason_to_leave_out(name)
        if why is not None:
            left[name] = LeftOut(name, why)
        elif selection.skip_broken:
            left[name] = LeftOut(name, Reason.BROKEN, reason_text)
    kept_repositories = {image.repository for image in kept}
    read_repositories = {image.repository for image in bundle.images}
    if selection.skip_broken:
        for repository, detail in repo_problem.items():
            if repository not in read_repositories and selection.reason_to_leave_out(repository) is None:
                left[repository] = LeftOut(f"repository {repository}", Reason.BROKEN, detail)

    def stays(p_image: str | None, p_repository: str | None) -> bool:
        if p_image is not None:
            return p_image not in left
        if p_repository is not None:
            if selection.skip_broken and p_repository in repo_problem:
                return False  # its images are listed as left out, or the repository itself is
            return p_repository in kept_repositories or selection.reason_to_leave_out(p_repository) is None
        return True

    problems = [p for p in bundle.problems if stays(p.image, p.repository)]
    images = [selection.rename(image) for image in kept]
    used: set[Digest] = set()
    for image in images:
        used.update(image.all_digests())
    blobs = {d: b for d, b in bundle.blobs.items() if d in used}
    from_base = {d: n for d, n in bundle.from_base.items() if d in used}  # a patch: what the kept images need
    out = Bundle(
        bundle.root, bundle.layout, images, blobs, problems, is_patch=bundle.is_patch, from_base=from_base,
        source=bundle.source,
    )  # fmt: skip
    return Selected(out, tuple(left.values()))


def check_destinations(bundle: Bundle, destination: Callable[[Image], str], what: str) -> None:
    """Refuse, before anything is written, two images that would land in one place (``what``: a word for it)."""
    seen: dict[str, Image] = {}
    clashes: list[tuple[Image, Image, str]] = []
    for image in bundle.images:
        where = destination(image)
        first = seen.setdefault(where, image)
        if first is not image:
            clashes.append((first, image, where))
    if not clashes:
        return
    a, b, where = clashes[0]
    same = " (the same manifest)" if a.digest == b.digest else ""
    more = f"; and {len(clashes) - 1} more such clash(es)" if len(clashes) > 1 else ""
    raise BundleError(
        f"images {a.source_name} and {b.source_name}{same} would both become {what} {where}; nothing was written. "
        f"Give one another name with --rename FROM=TO (e.g. --rename {_split(b.source_name)[0]}=NEW), or leave "
        f"one out with --exclude{more}",
        code=Code.COLLISION,
    )
