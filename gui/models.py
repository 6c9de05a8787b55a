"""Item models over core's dataclasses: the images table, the shared-layers tree, one image's layers and the
verify report. Each has column constants, SORT_ROLE (a raw sortable value) and OBJECT_ROLE (the core object).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from PySide6.QtCore import (
    QAbstractItemModel,
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QBrush, QFont, QFontDatabase

from regpack.analysis import Analysis, BlobUsage, ImageDiff, ImageStats
from regpack.bundle import Image, Role
from regpack.digest import Digest
from regpack.errors import Code, Problem, Severity
from regpack.gui.sizes import human_size
from regpack.gui.theme import status_colors
from regpack.manifest import Manifest
from regpack.verify import Report

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
OBJECT_ROLE = Qt.ItemDataRole.UserRole + 2

Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()
_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter


def status_brush(severity: Severity, role: int) -> QBrush | None:
    """Background and text of a row whose image has errors or warnings, in colours for the palette in use."""
    if severity is Severity.OK:
        return None
    colors = status_colors()
    error = severity is Severity.ERROR
    if role == Qt.ItemDataRole.BackgroundRole:
        return QBrush(colors.error_background if error else colors.warning_background)
    if role == Qt.ItemDataRole.ForegroundRole:
        return QBrush(colors.error_text if error else colors.warning_text)
    return None


_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders numbers by value: app-2 before app-10, v1.9 before v1.10; case-insensitive."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in _DIGITS.split(text.lower()) if part)


_HEX = frozenset("0123456789abcdef")


def digest_prefix(term: str) -> str | None:
    """The hex a search term names when it looks like a digest prefix (``sha256:ab12…`` or 6+ hex digits)."""
    _, sep, rest = term.partition(":")
    text = rest if sep else term
    if (sep or len(text) >= 6) and text and set(text) <= _HEX:
        return text
    return None


def distinct_images(images: Iterable[Image]) -> tuple[int, int]:
    """(images, tags): two tags of one manifest are one image."""
    images = list(images)
    return len({image.digest for image in images}), len(images)


def used_by_text(images: Iterable[Image]) -> str:
    distinct, tags = distinct_images(images)
    text = f"{distinct} image" + ("s" if distinct != 1 else "")
    return text + (f" ({tags} tags)" if tags != distinct else "")


def _mono() -> QFont:
    return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)


def kind_text(image: Image) -> str:
    """``image`` or ``list (linux/amd64, linux/arm64)``: what the Kind column shows."""
    if image.is_list:
        platforms = ", ".join(image.platforms) or f"{len(image.children)} platforms"
        return f"list ({platforms})"
    return "image"


class _RowsTableModel(QAbstractTableModel):
    """A flat table over a list of rows: the row/column counts and headers every table model here shares."""

    HEADERS: tuple[str, ...] = ()
    HEADER_TIPS: ClassVar[dict[int, str]] = {}
    _rows: list[Any]

    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.HEADERS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.HEADER_TIPS.get(section)
        return None


# --------------------------------------------------------------------------------------------- images table


class ImageTableModel(_RowsTableModel):
    REPOSITORY, TAG, KIND, LAYERS, SIZE, UNIQUE, SHARED, DIGEST, STATUS, NEW, IN_BASE = range(11)
    HEADERS = (
        *("Repository", "Tag", "Kind", "Layers", "Size", "Unique", "Shared", "Digest"),
        *("Status", "New bytes", "In base"),
    )
    NUMERIC = frozenset({LAYERS, SIZE, UNIQUE, SHARED, NEW, IN_BASE})
    COMPARED = (STATUS, NEW, IN_BASE)  # filled only while the bundle is compared with a base
    HEADER_TIPS: ClassVar[dict[int, str]] = {
        SIZE: "Bytes this image's own skopeo dir folder holds (manifests, config, layers)",
        UNIQUE: "Bytes of blobs no other image in the bundle uses",
        SHARED: "Bytes of blobs at least one other image uses too (stored once when packed)",
        DIGEST: "Manifest digest (full digest in the tooltip; Ctrl+C copies it)",
        STATUS: "Against the base: added (a name the base lacks), changed (another digest) or unchanged",
        NEW: "Bytes of this image the base lacks: what a patch carries for it",
        IN_BASE: "Bytes of this image the base already holds: a patch leaves them to the base",
    }

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[ImageStats] = []
        self._sort_keys: list[tuple[Any, ...]] = []  # per row, per column: sorting calls data() n·log n times
        self._status: dict[str | None, Severity] = {}
        self._diff: dict[int, ImageDiff] = {}  # id of an image -> how it compares with the base
        self._mono = _mono()

    def set_analysis(self, analysis: Analysis | None) -> None:
        self.beginResetModel()
        self._rows = list(analysis.images) if analysis is not None else []
        self._diff = {}
        self._sort_keys = [tuple(self._sort_key(s, c) for c in range(len(self.HEADERS))) for s in self._rows]
        self._status = {}
        self.endResetModel()

    def set_diff(self, rows: Iterable[ImageDiff]) -> None:
        """Fill the comparison columns from core's diff (its rows for the images of this bundle); none clears."""
        self._diff = {id(r.image): r for r in rows if r.image is not None}
        self._sort_keys = [tuple(self._sort_key(s, c) for c in range(len(self.HEADERS))) for s in self._rows]
        if self._rows:
            self.dataChanged.emit(self.index(0, self.STATUS), self.index(len(self._rows) - 1, self.IN_BASE))

    def image_diff(self, row: int) -> ImageDiff | None:
        return self._diff.get(id(self._rows[row].image))

    def set_status(self, status: dict[str | None, Severity]) -> None:
        """Colour rows by verify/read outcome: image name -> its worst severity."""
        if not status and not self._status:
            return
        self._status = dict(status)
        if self._rows:
            roles = [Qt.ItemDataRole.BackgroundRole, Qt.ItemDataRole.ForegroundRole]  # no re-sort needed
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, len(self.HEADERS) - 1), roles)

    def stats(self, row: int) -> ImageStats:
        return self._rows[row]

    def sort_key(self, row: int, column: int) -> Any:
        return self._sort_keys[row][column]

    def row_of(self, image: Image) -> int:
        for row, stats in enumerate(self._rows):
            if stats.image is image:
                return row
        return -1

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        row = index.row()
        if role == SORT_ROLE:
            return self._sort_keys[row][index.column()] if index.isValid() and 0 <= row < len(self._rows) else None
        if not index.isValid() or not 0 <= row < len(self._rows):
            return None
        stats = self._rows[row]
        image = stats.image
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(stats, col)
        if role == OBJECT_ROLE:
            return stats
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == self.DIGEST:
                return str(image.digest)
            if col == self.KIND:
                return f"{image.manifest.media_type}\n{kind_text(image)}"
            if col in (self.SIZE, self.UNIQUE, self.SHARED):
                return f"{self._raw_size(stats, col):,} bytes"
            if col in self.COMPARED:
                d = self._diff.get(id(image))
                if d is None:
                    return None
                if col == self.STATUS:
                    return f"{d.status.value}: base has {d.old_digest}" if d.old_digest else d.status.value
                return f"{d.added_bytes if col == self.NEW else d.shared_bytes:,} bytes"
            if col in (self.REPOSITORY, self.TAG):
                return image.name
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if col in self.NUMERIC else None
        if role == Qt.ItemDataRole.FontRole:
            return self._mono if col == self.DIGEST else None
        status = self._status.get(image.name)
        if status is not None and role in (Qt.ItemDataRole.BackgroundRole, Qt.ItemDataRole.ForegroundRole):
            return status_brush(status, role)
        return None

    def _raw_size(self, stats: ImageStats, col: int) -> int:
        return {self.SIZE: stats.total_bytes, self.UNIQUE: stats.unique_bytes, self.SHARED: stats.shared_bytes}[col]

    def _display(self, stats: ImageStats, col: int) -> str:
        image = stats.image
        if col in self.COMPARED:
            d = self._diff.get(id(image))
            if d is None:
                return ""
            if col == self.STATUS:
                return d.status.value
            return human_size(d.added_bytes if col == self.NEW else d.shared_bytes)
        if col == self.REPOSITORY:
            return image.repository
        if col == self.TAG:
            return image.tag if image.tag is not None else "—"
        if col == self.KIND:
            return kind_text(image)
        if col == self.LAYERS:
            return str(stats.layers)
        if col in (self.SIZE, self.UNIQUE, self.SHARED):
            return human_size(self._raw_size(stats, col))
        return image.digest.short

    def _sort_key(self, stats: ImageStats, col: int) -> Any:
        image = stats.image
        if col in self.COMPARED:
            d = self._diff.get(id(image))
            if col == self.STATUS:
                return d.status.value if d is not None else ""
            return -1 if d is None else d.added_bytes if col == self.NEW else d.shared_bytes
        if col == self.REPOSITORY:
            return (natural_key(image.repository), natural_key(image.tag or ""))
        if col == self.TAG:
            return (natural_key(image.tag or ""), natural_key(image.repository))
        if col == self.KIND:
            return kind_text(image)
        if col == self.LAYERS:
            return stats.layers
        if col in (self.SIZE, self.UNIQUE, self.SHARED):
            return self._raw_size(stats, col)
        return str(image.digest)


class _PythonSortProxy(QSortFilterProxyModel):
    """Sorts by SORT_ROLE values compared in Python: tuples (natural sort keys, status ranks) included."""

    def lessThan(self, left: Index, right: Index) -> bool:
        source = self.sourceModel()
        if isinstance(source, ImageTableModel):  # its keys are precomputed: skip two data() round trips
            a, b = source.sort_key(left.row(), left.column()), source.sort_key(right.row(), right.column())
        else:
            a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        try:
            return bool(a < b)
        except TypeError:  # None against a value: the empty ones first
            return a is None and b is not None


class ImageFilterProxy(_PythonSortProxy):
    """Search over name, digest, kind and platforms; every word typed must match somewhere."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._terms: list[str] = []
        self.setSortRole(SORT_ROLE)
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    def set_search(self, text: str) -> None:
        terms = text.lower().split()
        if terms == self._terms:
            return
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()
            self._terms = terms
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:  # Qt before 6.10
            self._terms = terms
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        if not self._terms:
            return True
        model = self.sourceModel()
        stats = model.data(model.index(source_row, 0, source_parent), OBJECT_ROLE)
        if stats is None:
            return False
        image = stats.image
        haystack = " ".join((image.name, str(image.digest), kind_text(image), image.manifest.media_type)).lower()
        digests: list[str] | None = None
        for term in self._terms:
            if term in haystack:
                continue
            prefix = digest_prefix(term)
            if prefix is None:
                return False
            if digests is None:  # layers and configs, every platform: "who uses this layer"
                digests = [d.hex for d in image.blob_digests()]
            if not any(d.startswith(prefix) for d in digests):
                return False
        return True


# --------------------------------------------------------------------------------------- shared layers tree


class BlobTreeModel(QAbstractItemModel):
    """Layers, most shared first, each expandable to the images using it; or grouped by image instead.

    Two levels only, so an index's internal id says where it is: 0 for a top-level row, parent row + 1 for a
    child. No Python object has to be kept alive for Qt's sake.
    """

    NAME, SIZE, MEDIA_TYPE, USED_BY = range(4)
    HEADERS = ("Layer / image", "Size", "Media type", "Used by")
    BY_BLOB, BY_IMAGE = "blob", "image"

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._mode = self.BY_BLOB
        self._usages: list[BlobUsage] = []
        self._images: list[ImageStats] = []
        self._usage_by_digest: dict[Digest, BlobUsage] = {}
        self._image_layers: dict[int, list[BlobUsage]] = {}
        self._highlight_image: Image | None = None
        self._highlight_digests: frozenset[Any] = frozenset()
        self._broken: dict[str, str] = {}  # digest text -> what verify found
        self._in_base: frozenset[Digest] = frozenset()  # layers the base compared with already holds
        self._mono = _mono()
        self._bold = QFont()
        self._bold.setBold(True)

    # -- content

    @property
    def mode(self) -> str:
        return self._mode

    def set_analysis(self, analysis: Analysis | None) -> None:
        self.beginResetModel()
        usages = analysis.blobs if analysis is not None else ()
        self._usages = [
            BlobUsage(u.blob, tuple(sorted(u.images, key=lambda i: natural_key(i.name))))
            for u in usages
            if u.blob.role is Role.LAYER
        ]
        self._usage_by_digest = {u.blob.digest: u for u in usages}
        images = analysis.images if analysis is not None else ()
        self._images = sorted(images, key=lambda s: natural_key(s.image.name))  # the table's order too
        self._broken = {}
        self._in_base = frozenset()
        self._image_layers = {}
        self._highlight_image = None
        self._highlight_digests = frozenset()
        self.endResetModel()

    def set_mode(self, mode: str) -> None:
        if mode not in (self.BY_BLOB, self.BY_IMAGE) or mode == self._mode:
            return
        self.beginResetModel()
        self._mode = mode
        self.endResetModel()

    def set_highlight(self, image: Image | None) -> None:
        """Mark ``image`` and its layers: the layer rows it uses (by blob), or its own row and children."""
        before = self.highlighted_rows()
        self._highlight_image = image
        self._highlight_digests = frozenset(image.blob_digests()) if image is not None else frozenset()
        rows = self.rowCount()
        if not rows:
            return
        last = len(self.HEADERS) - 1
        roles = [Qt.ItemDataRole.FontRole, Qt.ItemDataRole.BackgroundRole]
        self.dataChanged.emit(self.index(0, 0), self.index(rows - 1, last), roles)
        # Only rows holding the old or new image have marked children; telling the view about those is enough.
        for row in sorted(set(before) | set(self.highlighted_rows())):
            parent = self.index(row, 0)
            children = self.rowCount(parent)
            if children:
                self.dataChanged.emit(self.index(0, 0, parent), self.index(children - 1, last, parent), roles)

    def set_broken(self, broken: dict[str, str]) -> None:
        """Mark layers verify found broken: digest text -> what was found."""
        self._broken = dict(broken)
        if self.rowCount():
            roles = [Qt.ItemDataRole.BackgroundRole, Qt.ItemDataRole.ForegroundRole, Qt.ItemDataRole.ToolTipRole]
            self.dataChanged.emit(self.index(0, 0), self.index(self.rowCount() - 1, len(self.HEADERS) - 1), roles)

    def set_in_base(self, digests: Iterable[Digest]) -> None:
        """Mark the layers a base holds (empty: no comparison)."""
        self._in_base = frozenset(digests)
        if self.rowCount():
            roles = [Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole]
            last = len(self.HEADERS) - 1
            self.dataChanged.emit(self.index(0, 0), self.index(self.rowCount() - 1, last), roles)
            if self._mode == self.BY_IMAGE:  # the layers are the children there
                for row in range(self.rowCount()):
                    parent = self.index(row, 0)
                    if children := self.rowCount(parent):
                        self.dataChanged.emit(self.index(0, 0, parent), self.index(children - 1, last, parent), roles)

    def in_base(self, digest: Digest) -> bool:
        return digest in self._in_base

    def broken(self) -> dict[str, str]:
        return dict(self._broken)

    def row_of_digest(self, digest: str) -> int:
        for row, usage in enumerate(self._usages):
            if str(usage.blob.digest) == digest:
                return row
        return -1

    def highlighted_rows(self) -> list[int]:
        """Top-level rows that belong to the highlighted image."""
        if self._highlight_image is None:
            return []
        if self._mode == self.BY_BLOB:
            return [r for r, u in enumerate(self._usages) if u.blob.digest in self._highlight_digests]
        return [r for r, s in enumerate(self._images) if s.image is self._highlight_image]

    def layers_of(self, image_row: int) -> list[BlobUsage]:
        layers = self._image_layers.get(image_row)
        if layers is None:
            image = self._images[image_row].image
            layers = [
                u
                for d in image.blob_digests()
                if (u := self._usage_by_digest.get(d)) is not None and u.blob.role is Role.LAYER
            ]
            self._image_layers[image_row] = layers
        return layers

    # -- structure

    def _top_count(self) -> int:
        return len(self._usages) if self._mode == self.BY_BLOB else len(self._images)

    def _child_count(self, row: int) -> int:
        if not 0 <= row < self._top_count():
            return 0
        if self._mode == self.BY_BLOB:
            return self._usages[row].count
        return len(self.layers_of(row))

    def index(self, row: int, column: int, parent: Index = _ROOT) -> QModelIndex:
        if not self.hasIndex(row, column, parent):
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, column, 0)
        if parent.internalId() == 0:
            return self.createIndex(row, column, parent.row() + 1)
        return QModelIndex()

    def parent(self, index: Index = _ROOT) -> QModelIndex:  # type: ignore[override]
        if not index.isValid() or index.internalId() == 0:
            return QModelIndex()
        return self.createIndex(index.internalId() - 1, 0, 0)

    def rowCount(self, parent: Index = _ROOT) -> int:
        if not parent.isValid():
            return self._top_count()
        if parent.column() != 0 or parent.internalId() != 0:
            return 0
        return self._child_count(parent.row())

    def columnCount(self, parent: Index = _ROOT) -> int:
        return len(self.HEADERS)

    def hasChildren(self, parent: Index = _ROOT) -> bool:
        return self.rowCount(parent) > 0

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        horizontal = orientation == Qt.Orientation.Horizontal
        if horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < len(self.HEADERS):
            if section == self.NAME and self._mode == self.BY_IMAGE:
                return "Image / layer"
            return self.HEADERS[section]
        return None

    # -- data

    def object_at(self, index: Index) -> BlobUsage | ImageStats | Image | None:
        if not index.isValid():
            return None
        if index.internalId() == 0:
            row = index.row()
            if self._mode == self.BY_BLOB:
                return self._usages[row] if row < len(self._usages) else None
            return self._images[row] if row < len(self._images) else None
        parent_row = index.internalId() - 1
        if self._mode == self.BY_BLOB:
            images = self._usages[parent_row].images
            return images[index.row()] if index.row() < len(images) else None
        layers = self.layers_of(parent_row)
        return layers[index.row()] if index.row() < len(layers) else None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        obj = self.object_at(index)
        if obj is None:
            return None
        col = index.column()
        if role == OBJECT_ROLE:
            return obj
        top = index.internalId() == 0
        if isinstance(obj, BlobUsage):
            if top:
                marked = obj.blob.digest in self._highlight_digests
            else:
                marked = self._highlight_image is not None and (
                    self._images[index.internalId() - 1].image is self._highlight_image
                )
            return self._blob_data(obj, col, role, marked)
        stats = obj if isinstance(obj, ImageStats) else None
        image = obj.image if isinstance(obj, ImageStats) else obj
        return self._image_data(image, stats, col, role, image is self._highlight_image)

    def _blob_data(self, usage: BlobUsage, col: int, role: int, marked: bool) -> Any:
        blob = usage.blob
        broken = self._broken.get(str(blob.digest))
        if role == Qt.ItemDataRole.DisplayRole:
            if col == self.NAME:
                mark = f"  ✗ {broken}" if broken else ""
                absent = ""
                if blob.file is None:
                    absent = "  (from the base)" if blob.from_base else "  (foreign, absent)"
                held = "  ✓ in base" if blob.digest in self._in_base else ""
                return blob.digest.short + absent + held + mark
            if col == self.SIZE:
                return human_size(blob.size)
            if col == self.MEDIA_TYPE:
                return blob.media_type
            return used_by_text(usage.images)
        if role == SORT_ROLE:
            return (str(blob.digest), blob.size, blob.media_type, distinct_images(usage.images))[col]
        if broken and role in (Qt.ItemDataRole.BackgroundRole, Qt.ItemDataRole.ForegroundRole):
            return status_brush(Severity.ERROR, role)
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == self.NAME:
                held = "\nthe base compared with holds this layer" if blob.digest in self._in_base else ""
                return str(blob.digest) + held + (f"\nverify: {broken}" if broken else "")
            if col == self.SIZE:
                return f"{blob.size:,} bytes"
            if col == self.USED_BY:
                return "\n".join(image.name for image in usage.images[:30]) + (
                    f"\n… and {usage.count - 30} more" if usage.count > 30 else ""
                )
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if col in (self.SIZE, self.USED_BY) else None
        if role == Qt.ItemDataRole.FontRole:
            if marked:
                return self._bold
            return self._mono if col == self.NAME else None
        if role == Qt.ItemDataRole.BackgroundRole and marked:
            return QBrush(status_colors().marked_background)
        return None

    def _image_data(self, image: Image, stats: ImageStats | None, col: int, role: int, marked: bool) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            if col == self.NAME:
                return image.name
            if col == self.MEDIA_TYPE:
                return kind_text(image)
            if stats is not None and col == self.SIZE:
                return human_size(stats.total_bytes)
            if stats is not None and col == self.USED_BY:
                return f"{stats.layers} layer" + ("s" if stats.layers != 1 else "")
            return None
        if role == SORT_ROLE:
            if col == self.NAME:
                return image.name
            return stats.total_bytes if stats is not None and col == self.SIZE else None
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (self.SIZE, self.USED_BY):
            return _RIGHT
        if role == Qt.ItemDataRole.ToolTipRole and col == self.NAME:
            return f"{image.name}\n{image.digest}"
        if marked:
            if role == Qt.ItemDataRole.FontRole:
                return self._bold
            if role == Qt.ItemDataRole.BackgroundRole:
                return QBrush(status_colors().marked_background)
        return None


# ------------------------------------------------------------------------------------- one image's layers


@dataclass(frozen=True, slots=True)
class LayerRow:
    number: int  # 1-based position in the manifest
    digest: str
    short: str
    media_type: str
    size: int
    used_by: int  # distinct images (by manifest digest) in the bundle using this layer (0 when unknown)
    users: tuple[Image, ...] = ()  # every image (tag) using it


class LayersModel(_RowsTableModel):
    """The layers of one manifest, in order, with how many images share each."""

    NUMBER, DIGEST, SIZE, USED_BY, MEDIA_TYPE = range(5)
    HEADERS = ("#", "Digest", "Size", "Used by", "Media type")

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[LayerRow] = []
        self._mono = _mono()

    def set_manifest(self, manifest: Manifest | None, usage: dict[Digest, BlobUsage] | None = None) -> None:
        self.beginResetModel()
        self._rows = []
        if manifest is not None:
            for i, desc in enumerate(manifest.layers, 1):
                used = usage.get(desc.digest) if usage else None
                self._rows.append(
                    LayerRow(
                        i,
                        str(desc.digest),
                        desc.digest.short,
                        desc.media_type,
                        desc.size,
                        distinct_images(used.images)[0] if used is not None else 0,
                        used.images if used is not None else (),
                    )
                )
        self.endResetModel()

    def rows(self) -> list[LayerRow]:
        return list(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == self.NUMBER:
                return str(row.number)
            if col == self.DIGEST:
                return row.short
            if col == self.SIZE:
                return human_size(row.size) if row.size >= 0 else "?"
            if col == self.USED_BY:
                return used_by_text(row.users) if row.users else ""
            return row.media_type
        if role == SORT_ROLE:
            return (row.number, row.digest, row.size, row.used_by, row.media_type)[col]
        if role == OBJECT_ROLE:
            return row
        if role == Qt.ItemDataRole.ToolTipRole and col == self.DIGEST:
            return row.digest
        if role == Qt.ItemDataRole.ToolTipRole and col == self.USED_BY and row.users:
            names = sorted((i.name for i in row.users), key=natural_key)
            return "\n".join(names[:30]) + (f"\n… and {len(names) - 30} more" if len(names) > 30 else "")
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (self.NUMBER, self.SIZE, self.USED_BY):
            return _RIGHT
        if role == Qt.ItemDataRole.FontRole and col == self.DIGEST:
            return self._mono
        return None


# ------------------------------------------------------------------------------------------ verify report


@dataclass(frozen=True, slots=True)
class Verdict:
    """One row of the verify view: an image (or the bundle as a whole), its status and what was found about it."""

    image: str | None
    severity: Severity = Severity.OK
    findings: tuple[Problem, ...] = field(default=())

    @property
    def status(self) -> str:
        if not self.findings:
            return Severity.OK.value
        words: list[str] = []
        for finding in self.findings:
            if finding.code.label not in words:
                words.append(finding.code.label)
        return ", ".join(words)


def verdicts(report: Report) -> list[Verdict]:
    """Every image of the report in order (ok ones too), then images only the findings name, then the bundle."""
    found = report.by_image()
    rows = [Verdict(name, severity, tuple(found.get(name, ()))) for name, severity in _bundle_last(report.statuses())]
    if rows and rows[-1].image is None:
        # Problems of a whole repository of registry storage get a row of their own, labelled as such.
        loose = rows.pop().findings
        for repository in dict.fromkeys(f.repository for f in loose if f.repository):
            own = tuple(f for f in loose if f.repository == repository)
            rows.append(Verdict(f"repository {repository}", Severity.worst(f.severity for f in own), own))
        rest = tuple(f for f in loose if not f.repository)
        if rest:
            rows.append(Verdict(None, Severity.worst(f.severity for f in rest), rest))
    return rows


def _bundle_last(statuses: dict[str | None, Severity]) -> list[tuple[str | None, Severity]]:
    return sorted(statuses.items(), key=lambda item: item[0] is None)  # stable: the bundle row goes last


class VerifyModel(_RowsTableModel):
    IMAGE, STATUS, DETAILS = range(3)
    HEADERS = ("Image", "Status", "Details")

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[Verdict] = []

    def set_verdicts(self, rows: Sequence[Verdict]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def verdict(self, row: int) -> Verdict:
        return self._rows[row]

    def row_of(self, image: str | None) -> int:
        for row, verdict in enumerate(self._rows):
            if verdict.image == image:
                return row
        return -1

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        verdict = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == self.IMAGE:
                return verdict.image if verdict.image is not None else "(bundle)"
            if col == self.STATUS:
                return verdict.status
            if not verdict.findings:
                return ""
            first = verdict.findings[0]
            text = first.reason + (f" — {first.where}" if first.where else "")  # the path is often long: last
            more = len(verdict.findings) - 1
            return text + (f"  (+{more} more)" if more else "")
        if role == SORT_ROLE:
            rank = verdict.severity.rank
            name = natural_key(verdict.image or "")
            return (name, (rank, verdict.status, name), (len(verdict.findings), name))[col]
        if role == OBJECT_ROLE:
            return verdict
        if role == Qt.ItemDataRole.ToolTipRole and verdict.findings:
            return "\n".join(
                f"{f.severity.label}: {f.where + ': ' if f.where else ''}{f.reason}" for f in verdict.findings[:40]
            )
        if role in (Qt.ItemDataRole.BackgroundRole, Qt.ItemDataRole.ForegroundRole):
            return status_brush(verdict.severity, role)
        return None


class VerifyFilterProxy(_PythonSortProxy):
    """Sorting by any column (status by severity), the window's filter words, and "problems only"."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self._terms: list[str] = []
        self._problems_only = False

    def _refilter(self, change: Any) -> None:
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:  # Qt before 6.10
            change()
            self.invalidateFilter()

    def set_search(self, text: str) -> None:
        self._refilter(lambda: setattr(self, "_terms", text.lower().split()))

    def set_problems_only(self, on: bool) -> None:
        self._refilter(lambda: setattr(self, "_problems_only", on))

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        model = self.sourceModel()
        verdict = model.data(model.index(source_row, 0, source_parent), OBJECT_ROLE)
        if verdict is None:
            return False
        if self._problems_only and verdict.severity is Severity.OK:
            return False
        if not self._terms:
            return True
        haystack = f"{verdict.image or '(bundle)'} {verdict.status}".lower()
        return all(term in haystack for term in self._terms)


_BLOB_HEX = re.compile(r"(?<![0-9a-f])([0-9a-f]{64}|[0-9a-f]{128})(?![0-9a-f])")


def digest_of_path(path: str | None) -> str | None:
    """The digest a blob file's path names (skopeo dir, registry storage and OCI layouts all do)."""
    if not path:
        return None
    found = _BLOB_HEX.findall(path)
    if not found:
        return None
    hex_: str = found[-1]
    return ("sha256:" if len(hex_) == 64 else "sha512:") + hex_


@dataclass(frozen=True, slots=True)
class BadBlob:
    """One broken blob (or file), once, with every image it breaks."""

    digest: str | None
    path: str
    code: Code
    message: str
    images: tuple[str, ...]
    severity: Severity

    @property
    def problem(self) -> str:
        return self.code.label


def bad_blobs(findings: Iterable[Problem]) -> list[BadBlob]:
    """Group findings about the same file: one corrupted layer shared by seven images is one row, not seven.

    Per-image copies of one blob (skopeo dir folders hold a file each) group by digest as well."""
    groups: dict[tuple[str, Code], list[Problem]] = {}
    for finding in findings:
        where = finding.where
        if not where:
            continue
        digest = digest_of_path(where)
        groups.setdefault((digest or where, finding.code), []).append(finding)
    out = []
    for (_, code), found in groups.items():
        first = found[0]
        where = first.where or ""
        images = sorted({f.image for f in found if f.image}, key=natural_key)
        severity = Severity.worst(f.severity for f in found)
        out.append(BadBlob(digest_of_path(where), where, code, first.reason, tuple(images), severity))
    out.sort(key=lambda b: (-b.severity.rank, -len(b.images), b.path))
    return out


class BadBlobModel(_RowsTableModel):
    BLOB, PROBLEM, IMAGES, USERS = range(4)
    HEADERS = ("Blob", "Problem", "Images", "Breaks")
    HEADER_TIPS: ClassVar[dict[int, str]] = {USERS: "Every image that uses this blob"}

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[BadBlob] = []
        self._mono = _mono()

    def set_blobs(self, rows: Sequence[BadBlob]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def blob(self, row: int) -> BadBlob:
        return self._rows[row]

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        bad = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == self.BLOB:
                return bad.digest[:19] if bad.digest else bad.path
            if col == self.PROBLEM:
                return bad.problem
            if col == self.IMAGES:
                return str(len(bad.images))
            shown = ", ".join(bad.images[:3])
            return shown + (f" and {len(bad.images) - 3} more" if len(bad.images) > 3 else "")
        if role == SORT_ROLE:
            return (bad.digest or bad.path, bad.problem, len(bad.images), ", ".join(bad.images))[col]
        if role == OBJECT_ROLE:
            return bad
        if role == Qt.ItemDataRole.ToolTipRole:
            if col in (self.BLOB, self.PROBLEM):
                return f"{bad.digest or ''}\n{bad.path}\n{bad.message}".strip()
            if col == self.USERS:
                return "\n".join(bad.images)
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole and col == self.IMAGES:
            return _RIGHT
        if role == Qt.ItemDataRole.FontRole and col == self.BLOB:
            return self._mono
        if role in (Qt.ItemDataRole.BackgroundRole, Qt.ItemDataRole.ForegroundRole) and col == self.PROBLEM:
            return status_brush(bad.severity, role)
        return None
