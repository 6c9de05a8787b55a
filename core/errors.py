"""Domain errors: every failure a user can cause names the image, the file and the reason."""

from __future__ import annotations

from pathlib import Path


def printable(path: Path | str) -> str:
    """A path as text that any terminal can print: undecodable bytes in file names are shown escaped."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class RegpackError(Exception):
    """Base of every error regpack raises on purpose."""


class BundleError(RegpackError):
    """A bundle (or one of its files) is not what it must be.

    ``path`` is the file or folder at fault, ``image`` the image reference it belongs to (when known).
    """

    def __init__(
        self, reason: str, path: Path | str | None = None, image: str | None = None, code: str = "invalid"
    ) -> None:
        self.reason = reason
        self.path = Path(path) if path is not None else None
        self.image = image
        self.code = code  # a stable word for reports: unsafe, unreadable, empty, bad-manifest, ...
        super().__init__(self.describe())

    def describe(self) -> str:
        parts = []
        if self.image:
            parts.append(f"image {self.image}")
        if self.path is not None:
            parts.append(printable(self.path))
        where = ": ".join(parts)
        return f"{where}: {self.reason}" if where else self.reason


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
