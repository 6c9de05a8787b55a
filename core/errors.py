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


class RegpackError(Exception):
    """Base of every error regpack raises on purpose."""


def _describe(reason: str, path: Path | None, image: str | None) -> str:
    parts = []
    if image:
        parts.append(f"image {image}")
    if path is not None:
        parts.append(printable(path))
    where = ": ".join(parts)
    return f"{where}: {reason}" if where else reason


class BundleError(RegpackError):
    """A bundle (or one of its files) is not what it must be.

    ``path`` is the file or folder at fault, ``image`` the image reference it belongs to (when known).
    """

    def __init__(
        self, reason: str, path: Path | str | None = None, image: str | None = None, code: Code = Code.INVALID
    ) -> None:
        self.reason = reason
        self.path = Path(path) if path is not None else None
        self.image = image
        self.code = code
        super().__init__(self.describe())

    def describe(self) -> str:
        return _describe(self.reason, self.path, self.image)

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

    @staticmethod
    def of(error: BundleError, severity: Severity = Severity.ERROR) -> Problem:
        return Problem(severity, error.code, error.reason, error.path, error.image)

    @property
    def where(self) -> str | None:
        """The file at fault as printable text."""
        return None if self.path is None else printable(self.path)

    def __str__(self) -> str:
        return f"{self.severity}: {_describe(self.reason, self.path, self.image)}"


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
