"""Domain errors and problems: every failure a user can cause names the image, the file and the reason.

``BundleError`` is raised; ``Problem`` is the same fact recorded instead (reading and verifying go on and report
every problem). Both carry a ``Code`` (a stable word for reports and JSON) and problems a ``Severity``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


def printable(path: Path | str) -> str:
    """A path as text that any terminal can print: undecodable bytes in file names are shown escaped."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class Code(StrEnum):
    """What kind of problem: the value is the stable word in reports and JSON, ``label`` the human words."""

    INVALID = "invalid"
    UNSAFE = "unsafe"
    UNREADABLE = "unreadable"
    EMPTY = "empty"
    MISSING = "missing"
    MISSING_MANIFEST = "missing-manifest"
    MISSING_CHILD = "missing-child"
    MISSING_BLOB = "missing-blob"
    MISSING_LINK = "missing-link"
    MISSING_REVISION = "missing-revision"
    BAD_MANIFEST = "bad-manifest"
    BAD_NAME = "bad-name"
    BAD_VERSION = "bad-version"
    BAD_LINK = "bad-link"
    DIGEST_MISMATCH = "digest-mismatch"
    SIZE = "size"
    LOOP = "loop"
    COLLISION = "collision"  # two images would land in one place of the output
    BAD_PATCH = "bad-patch"  # a patch description that cannot be trusted
    MISSING_BASE_BLOB = "missing-base-blob"  # a blob a patch expects from its base is not there
    NESTED_IMAGE = "nested-image"
    INCOMPLETE_IMAGE = "incomplete-image"
    UNFINISHED = "unfinished"
    SCHEMA1_SIGNED = "schema1-signed"
    TRUNCATED = "truncated"  # an archive that ends early
    CORRUPT = "corrupt"  # an archive whose headers or compressed stream do not check out
    SIDECAR = "sidecar"  # an archive that does not match its .sha256 sidecar

    @property
    def label(self) -> str:
        return _CODE_LABELS.get(self, self.value.replace("-", " "))


_CODE_LABELS = {
    Code.MISSING_BLOB: "missing blob",
    Code.DIGEST_MISMATCH: "digest mismatch",
    Code.BAD_LINK: "broken link",
    Code.MISSING_LINK: "broken link",
    Code.MISSING_REVISION: "broken link",
    Code.MISSING_CHILD: "missing platform manifest",
    Code.SIZE: "size mismatch",
    Code.BAD_MANIFEST: "bad manifest",
    Code.BAD_NAME: "bad name",
    Code.BAD_VERSION: "bad version file",
    Code.UNSAFE: "unsafe path",
    Code.LOOP: "manifest loop",
    Code.EMPTY: "empty bundle",
    Code.COLLISION: "name clash",
    Code.BAD_PATCH: "bad patch description",
    Code.MISSING_BASE_BLOB: "missing base blob",
    Code.NESTED_IMAGE: "image folder inside an image folder",
    Code.INCOMPLETE_IMAGE: "half-written image folder",
    Code.UNFINISHED: "unfinished output",
    Code.SCHEMA1_SIGNED: "schema1 stored signed",
    Code.TRUNCATED: "truncated archive",
    Code.CORRUPT: "corrupt archive",
    Code.SIDECAR: "sidecar mismatch",
}


class Severity(StrEnum):
    """How bad, in increasing order. A problem is a warning or an error; an image with none is ``OK``."""

    OK = "ok"
    WARNING = "warning"
    ERROR = "error"

    @property
    def label(self) -> str:
        return self.value.upper() if self is Severity.OK else self.value.capitalize()

    @property
    def rank(self) -> int:
        return _RANKS[self]

    @staticmethod
    def worst(severities: Iterable[Severity]) -> Severity:
        return max(severities, key=lambda s: s.rank, default=Severity.OK)


_RANKS = {Severity.OK: 0, Severity.WARNING: 1, Severity.ERROR: 2}


_CONTROL = {i: f"\\x{i:02x}" for i in (*range(32), 127)} | {10: "\\n", 13: "\\r", 9: "\\t"}


def quoted(value: str | bytes, limit: int = 80) -> str:
    """Text or bytes from a bundle as a message shows them: in double quotes, cut at ``limit`` characters,
    undecodable bytes and control characters escaped (``\\x00``, ``\\n``), never as a Python repr."""
    if isinstance(value, bytes):
        text = value[: limit * 4].decode("utf-8", "backslashreplace")
    else:
        text = value[: limit + 1]
        if any(0xD800 <= ord(c) <= 0xDFFF for c in text):  # undecodable bytes of a file name, or lone surrogates
            text = "".join(_surrogate(c) for c in text)
    cut = len(text) > limit
    return '"' + text[:limit].translate(_CONTROL) + ('..."' if cut else '"')


def _surrogate(c: str) -> str:
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"  # a byte that was not UTF-8, as os.fsdecode keeps it
    return f"\\u{code:04x}" if 0xD800 <= code <= 0xDFFF else c


class RegpackError(Exception):
    """Base of every error regpack raises on purpose."""


def _describe(reason: str, path: Path | None, image: str | None, repository: str | None = None) -> str:
    parts = []
    if image:
        parts.append(f"image {image}")
    elif repository:
        parts.append(f"repository {repository}")
    if path is not None:
        parts.append(printable(path))
    where = ": ".join(parts)
    return f"{where}: {reason}" if where else reason


class BundleError(RegpackError):
    """A bundle (or one of its files) is not what it must be.

    ``path`` is the file or folder at fault, ``image`` the image reference it belongs to (when known).
    """

    def __init__(
        self,
        reason: str,
        path: Path | str | None = None,
        image: str | None = None,
        code: Code = Code.INVALID,
        *,
        repository: str | None = None,
    ) -> None:
        self.reason = reason
        self.path = Path(path) if path is not None else None
        self.image = image
        self.code = code
        self.repository = repository  # a problem of a whole repository (registry storage), not of one image
        super().__init__(self.describe())

    def describe(self) -> str:
        return _describe(self.reason, self.path, self.image, self.repository)

    def code_or(self, default: Code) -> Code:
        """This error's code, or ``default`` when it has none more precise than ``INVALID``."""
        return default if self.code is Code.INVALID else self.code


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong found while reading or verifying: which image, which file, why, how bad."""

    severity: Severity
    code: Code
    reason: str
    path: Path | None = None
    image: str | None = None
    repository: str | None = None  # a problem of a repository of registry storage, not of one image

    @staticmethod
    def of(error: BundleError, severity: Severity = Severity.ERROR) -> Problem:
        return Problem(severity, error.code, error.reason, error.path, error.image, error.repository)

    @property
    def subject(self) -> str | None:
        """What the problem is about: "image NAME", "repository NAME", or None for the bundle as a whole."""
        if self.image:
            return f"image {self.image}"
        return f"repository {self.repository}" if self.repository else None

    @property
    def where(self) -> str | None:
        """The file at fault as printable text."""
        return None if self.path is None else printable(self.path)

    def __str__(self) -> str:
        return f"{self.severity}: {_describe(self.reason, self.path, self.image, self.repository)}"


def worst_by_image(images: Iterable[str], problems: Iterable[Problem]) -> dict[str | None, Severity]:
    """Status per image: the worst severity of its problems (``OK`` for none); ``None`` is the bundle itself,
    present only when a problem names no image. Images only the problems name come after the listed ones."""
    found: dict[str | None, list[Severity]] = {name: [] for name in images}
    for p in problems:
        found.setdefault(p.image, []).append(p.severity)
    return {name: Severity.worst(severities) for name, severities in found.items()}


class DestinationError(RegpackError):
    """The destination cannot be written as asked (exists and is not empty, is a file, ...)."""

    def __init__(self, reason: str, path: Path | str) -> None:
        self.reason = reason
        self.path = Path(path)
        super().__init__(f"{printable(self.path)}: {reason}")


class Cancelled(RegpackError):
    """The job was cancelled by the user; nothing was left behind."""

    def __init__(self) -> None:
        super().__init__("cancelled")
