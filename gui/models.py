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
    QTimer,
)
from PySide6.QtGui import QBrush, QFont, QFontDatabase

from regpack.analysis import Analysis, BlobUsage, ImageDiff, ImageStats
from regpack.bundle import Image, Role
from regpack.digest import Digest
from regpack.errors import BundleError, Code, Problem, Severity
from regpack.gui.sizes import human_size
from regpack.gui.theme import status_colors
from regpack.manifest import Manifest
from regpack.verify import Report

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
OBJECT_ROLE = Qt.ItemDataRole.UserRole + 2

Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()
_TOP = -1  # the root, where a tree's offered rows are counted
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


_DIGITS = re.compile(r"\d+")


def _number_key(match: re.Match[str]) -> str:
    digits = match.group().lstrip("0")
    return "\0" + chr(0x30 + len(digits)) + digits


def natural_key(text: str) -> str:
    """Sort key that orders numbers by value: app-2 before app-10, v1.9 before v1.10; case-insensitive.

    A plain string, so that sorting compares in C: each run of text ends with NUL, each number becomes its
    length (one character) and its digits without leading zeros. Runs of text and numbers alternate in every
    key, so two keys compare run by run; a shorter run of text (or a key that ends) sorts first, and a number
    before text where one name has a number and the other text. NUL never occurs twice in a row in a key.
    """
    return _DIGITS.sub(_number_key, text.lower()) + "\0"


class _NaturalKeys:
    """natural_key, remembered: a bundle repeats its repositories and tags many times."""

    def __init__(self) -> None:
        self._known: dict[str, str] = {}

    def key(self, text: str) -> str:
        found = self._known.get(text)
        if found is None:
            found = self._known[text] = natural_key(text)
        return found


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
    return used_by_count_text(*distinct_images(images))


def used_by_count_text(distinct: int, tags: int) -> str:
    """The "Used by" text: "3 images", or "2 images (3 tags)" when two tags name one image."""
    text = f"{distinct} image" + ("s" if distinct != 1 else "")
    return text + (f" ({tags} tags)" if tags != distinct else "")


_usage_index: tuple[Analysis, dict[Digest, BlobUsage]] | None = None


def usage_by_digest(analysis: Analysis | None) -> dict[Digest, BlobUsage]:
    """Every blob of ``analysis`` by digest, made once for the analysis shown (the tree and the details share
    it; do not change it)."""
    global _usage_index
    if analysis is None:
        return {}
    if _usage_index is None or _usage_index[0] is not analysis:
        _usage_index = (analysis, {u.blob.digest: u for u in analysis.blobs})
    return _usage_index[1]


def name_order(images: Sequence[Image]) -> list[int]:
    """Positions of ``images`` in natural order of repository, then tag: the images table's first order."""
    names = _NaturalKeys()
    keys = [names.key(i.repository) + "\0" + names.key(i.tag or "") for i in images]  # "\0": see natural_key
    return sorted(range(len(images)), key=keys.__getitem__)


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
    """The images of a bundle, one row each: shown as soon as the bundle is read (name, tag, kind, digest), the
    numbers of core's analysis filled in when it arrives (``set_images`` then ``set_analysis``).

    The model sorts itself (``sort``): keys of the sorted column only, computed once per column and compared
    as plain strings and numbers, so a hundred thousand rows sort in a fraction of a second; the filter proxy
    in front of it keeps this order.
    """

    REPOSITORY, TAG, KIND, LAYERS, SIZE, UNIQUE, SHARED, DIGEST, STATUS, NEW, IN_BASE = range(11)
    HEADERS = (
        *("Repository", "Tag", "Kind", "Layers", "Size", "Unique", "Shared", "Digest"),
        *("Status", "New bytes", "In base"),
    )
    NUMERIC = frozenset({LAYERS, SIZE, UNIQUE, SHARED, NEW, IN_BASE})
    ANALYSED = (LAYERS, SIZE, UNIQUE, SHARED)  # filled by core's analysis, after the rows are shown
    COMPARED = (STATUS, NEW, IN_BASE)  # filled only while the bundle is compared with a base
    PENDING = "…"  # what an analysed column shows until the analysis arrives
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
        self._images: list[Image] = []  # bundle order
        self._stats: Sequence[ImageStats] | None = None  # bundle order, once analysed
        self._order: list[int] = []  # row -> position in bundle order
        self._row_of: dict[int, int] | None = None  # id of an image -> row, built when first asked
        self._keys: dict[int, list[Any]] = {}  # column -> sort key per image (bundle order), built when sorted
        self._sort_column, self._sort_order = self.REPOSITORY, Qt.SortOrder.AscendingOrder
        self._status: dict[str | None, Severity] = {}
        self._diff: dict[int, ImageDiff] = {}  # id of an image -> how it compares with the base
        self._mono = _mono()

    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._order)

    # -- content

    def set_images(self, images: Sequence[Image]) -> None:
        """Show ``images`` (a bundle just read); their numbers stay pending until ``set_analysis``."""
        self.beginResetModel()
        self._images = list(images)
        self._stats = None
        self._diff = {}
        self._status = {}
        self._keys = {}
        self._order = self._sorted_order()
        self._row_of = None
        self.endResetModel()

    def set_analysis(self, analysis: Analysis | None) -> None:
        """Fill the numbers from core's analysis: in place when it is of the images shown, else a new table."""
        stats = analysis.images if analysis is not None else ()
        same = len(stats) == len(self._images) and all(s.image is i for s, i in zip(stats, self._images, strict=True))
        if not same or not stats:
            self.set_images([s.image for s in stats])
        self._stats = stats if stats else None
        self._columns_changed(self.ANALYSED, self.LAYERS, self.SHARED)

    @property
    def analysed(self) -> bool:
        return self._stats is not None

    def set_diff(self, rows: Iterable[ImageDiff]) -> None:
        """Fill the comparison columns from core's diff (its rows for the images of this bundle); none clears."""
        diff = {id(r.image): r for r in rows if r.image is not None}
        if not diff and not self._diff:
            return
        self._diff = diff
        self._columns_changed(self.COMPARED, self.STATUS, self.IN_BASE)

    def _columns_changed(self, columns: tuple[int, ...], first: int, last: int) -> None:
        """New values in ``columns`` (``first`` to ``last``): their sort keys made again when asked for, the rows
        sorted again when one of them orders the table, and the views told."""
        for column in columns:
            self._keys.pop(column, None)
        if self._sort_column in columns:
            self.sort(self._sort_column, self._sort_order)
        if self._order:
            self.dataChanged.emit(self.index(0, first), self.index(len(self._order) - 1, last))

    def image_diff(self, row: int) -> ImageDiff | None:
        return self._diff.get(id(self._images[self._order[row]]))

    def set_status(self, status: dict[str | None, Severity]) -> None:
        """Colour rows by verify/read outcome: image name -> its worst severity."""
        if not status and not self._status:
            return
        self._status = dict(status)
        if self._order:
            roles = [Qt.ItemDataRole.BackgroundRole, Qt.ItemDataRole.ForegroundRole]  # no re-sort needed
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._order) - 1, len(self.HEADERS) - 1), roles)

    def image(self, row: int) -> Image:
        return self._images[self._order[row]]

    def stats(self, row: int) -> ImageStats:
        """The row's numbers; until the analysis arrives, the image with -1 for every number."""
        at = self._order[row]
        if self._stats is not None:
            return self._stats[at]
        return ImageStats(self._images[at], -1, -1, -1, -1)

    def images_in_order(self) -> list[Image]:
        """Every image, in the order of the rows."""
        images = self._images
        return [images[i] for i in self._order]

    def sort_key(self, row: int, column: int) -> Any:
        return self._column_keys(column)[self._order[row]]

    def row_of(self, image: Image) -> int:
        if self._row_of is None:
            images = self._images
            self._row_of = {id(images[at]): row for row, at in enumerate(self._order)}
        row = self._row_of.get(id(image), -1)
        return row if row >= 0 and self._images[self._order[row]] is image else -1

    # -- sorting

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Reorder the rows by ``column`` (stable: equal keys keep their order); selections follow their rows."""
        if not 0 <= column < len(self.HEADERS):
            return
        self._sort_column, self._sort_order = column, order
        if not self._order:
            return
        self.layoutAboutToBeChanged.emit()
        before = self.persistentIndexList()
        held = [(self._order[i.row()], i.column()) for i in before]
        self._order = self._sorted_order()
        self._row_of = None
        where = {at: row for row, at in enumerate(self._order)} if held else {}
        self.changePersistentIndexList(before, [self.index(where[at], column) for at, column in held])
        self.layoutChanged.emit()

    def sorted_by(self) -> tuple[int, Qt.SortOrder]:
        return self._sort_column, self._sort_order

    def _sorted_order(self) -> list[int]:
        keys = self._column_keys(self._sort_column)
        descending = self._sort_order == Qt.SortOrder.DescendingOrder
        return sorted(range(len(self._images)), key=keys.__getitem__, reverse=descending)

    def _column_keys(self, column: int) -> list[Any]:
        keys = self._keys.get(column)
        if keys is None:
            keys = self._keys[column] = self._make_keys(column)
        return keys

    def _make_keys(self, col: int) -> list[Any]:
        images = self._images
        if col in (self.REPOSITORY, self.TAG):
            names = _NaturalKeys()
            repos = [names.key(i.repository) for i in images]
            tags = [names.key(i.tag or "") for i in images]
            pairs = zip(repos, tags, strict=True) if col == self.REPOSITORY else zip(tags, repos, strict=True)
            return [first + "\0" + second for first, second in pairs]  # "\0" never occurs in a key: see natural_key
        if col == self.KIND:
            return [kind_text(i) for i in images]
        if col == self.DIGEST:
            return [str(i.digest) for i in images]
        if col in self.ANALYSED:
            if self._stats is None:
                return [-1] * len(images)
            return [self._raw_number(s, col) for s in self._stats]
        diff = self._diff
        if col == self.STATUS:
            return [d.status.value if (d := diff.get(id(i))) is not None else "" for i in images]
        if col == self.NEW:
            return [d.added_bytes if (d := diff.get(id(i))) is not None else -1 for i in images]
        return [d.shared_bytes if (d := diff.get(id(i))) is not None else -1 for i in images]

    def _raw_number(self, stats: ImageStats, col: int) -> int:
        if col == self.LAYERS:
            return stats.layers
        return {self.SIZE: stats.total_bytes, self.UNIQUE: stats.unique_bytes, self.SHARED: stats.shared_bytes}[col]

    # -- data

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        row = index.row()
        if not index.isValid() or not 0 <= row < len(self._order):
            return None
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(row, col)
        if role == SORT_ROLE:
            return self.sort_key(row, col)
        if role == OBJECT_ROLE:
            return self.stats(row)
        image = self._images[self._order[row]]
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == self.DIGEST:
                return str(image.digest)
            if col == self.KIND:
                return f"{image.manifest.media_type}\n{kind_text(image)}"
            if col in (self.SIZE, self.UNIQUE, self.SHARED):
                if self._stats is None:
                    return "counting…"
                return f"{self._raw_number(self._stats[self._order[row]], col):,} bytes"
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
        if role in (Qt.ItemDataRole.BackgroundRole, Qt.ItemDataRole.ForegroundRole) and self._status:
            status = self._status.get(image.name)
            if status is not None:
                return status_brush(status, role)
        return None

    def _display(self, row: int, col: int) -> str:
        at = self._order[row]
        image = self._images[at]
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
        if col in self.ANALYSED:
            if self._stats is None:
                return self.PENDING
            stats = self._stats[at]
            return str(stats.layers) if col == self.LAYERS else human_size(self._raw_number(stats, col))
        return image.digest.short


class _PythonSortProxy(QSortFilterProxyModel):
    """Sorts by SORT_ROLE values compared in Python: tuples (natural sort keys, status ranks) included."""

    def lessThan(self, left: Index, right: Index) -> bool:
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        try:
            return bool(a < b)
        except TypeError:  # None against a value: the empty ones first
            return a is None and b is not None


class ImageFilterProxy(QSortFilterProxyModel):
    """Search over name, digest, kind and platforms; every word typed must match somewhere.

    Sorting is the images model's own (``ImageTableModel.sort``): this proxy passes a sort on and keeps the
    model's order, so it never compares rows itself."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._terms: list[str] = []
        self.setSortRole(SORT_ROLE)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        source = self.sourceModel()
        if isinstance(source, ImageTableModel):
            source.sort(column, order)
        else:
            super().sort(column, order)

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
        if not isinstance(model, ImageTableModel) or not 0 <= source_row < model.rowCount():
            return False
        image = model.image(source_row)
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

    Nothing is made before a view asks for it: a row's children are ordered when it is first expanded, and a
    layer that a hundred thousand images share offers its images a batch at a time (``canFetchMore`` /
    ``fetchMore``). A view showing the last child offered gets the next batch as soon as it is done painting:
    scrolling down through a layer's images goes on to the end.
    """

    NAME, SIZE, MEDIA_TYPE, USED_BY = range(4)
    HEADERS = ("Layer / image", "Size", "Media type", "Used by")
    BY_BLOB, BY_IMAGE = "blob", "image"
    CHILD_BATCH = 1000  # children a row offers at first, and how many more each fetch adds
    TOP_BATCH = 2000  # the same for the top-level rows (a hundred thousand layers, or images by image)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._mode = self.BY_BLOB
        self._usages: list[BlobUsage] = []  # layers only, most shared first (core's order)
        self._stats: Sequence[ImageStats] = ()  # bundle order
        self._images_sorted: list[ImageStats] | None = None  # by name, as the table: made when first needed
        self._rank: dict[int, int] | None = None  # id of an image -> its place in that order
        self._analysis: Analysis | None = None
        self._layer_rows: dict[Digest, int] | None = None  # layer digest -> top-level row (by blob)
        self._children: dict[int, Sequence[Image] | list[BlobUsage]] = {}  # parent row -> ordered children
        self._offered: dict[int, int] = {}  # parent row -> children offered beyond the first batch
        self._distinct: dict[int, int] = {}  # layer row -> distinct images (by digest) using it
        self._wanted: set[int] = set()  # parent rows whose next batch is asked for
        self._inserting = False  # a batch is going in
        self._generation = 0  # bumped at every reset: a batch asked for before it is dropped
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
        self._usages = [u for u in usages if u.blob.role is Role.LAYER]
        self._analysis = analysis
        self._stats = analysis.images if analysis is not None else ()
        self._images_sorted = None
        self._rank = None
        self._layer_rows = None
        self._distinct = {}
        self._forget_children()
        self._broken = {}
        self._in_base = frozenset()
        self._highlight_image = None
        self._highlight_digests = frozenset()
        self.endResetModel()

    def _forget_children(self) -> None:
        self._children = {}
        self._offered = {}
        self._wanted = set()
        self._generation += 1

    def set_mode(self, mode: str) -> None:
        if mode not in (self.BY_BLOB, self.BY_IMAGE) or mode == self._mode:
            return
        self.beginResetModel()
        self._mode = mode
        self._forget_children()
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
            if row not in self._children or row >= rows:
                continue  # never expanded (or not offered): the view holds none of its children
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
        in_base = frozenset(digests)
        if not in_base and not self._in_base:
            return
        self._in_base = in_base
        if self.rowCount():
            roles = [Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole]
            last = len(self.HEADERS) - 1
            self.dataChanged.emit(self.index(0, 0), self.index(self.rowCount() - 1, last), roles)
            if self._mode == self.BY_IMAGE:  # the layers are the children there: of the rows a view opened
                for row in sorted(r for r in self._children if r < self.rowCount()):
                    parent = self.index(row, 0)
                    if children := self.rowCount(parent):
                        self.dataChanged.emit(self.index(0, 0, parent), self.index(children - 1, last, parent), roles)

    def in_base(self, digest: Digest) -> bool:
        return digest in self._in_base

    def broken(self) -> dict[str, str]:
        return dict(self._broken)

    def row_of_digest(self, digest: str) -> int:
        try:
            return self._rows_of_layers().get(Digest.parse(digest), -1)
        except BundleError:
            return -1

    def _rows_of_layers(self) -> dict[Digest, int]:
        if self._layer_rows is None:
            self._layer_rows = {u.blob.digest: row for row, u in enumerate(self._usages)}
        return self._layer_rows

    def highlighted_rows(self) -> list[int]:
        """Top-level rows that belong to the highlighted image."""
        image = self._highlight_image
        if image is None:
            return []
        if self._mode == self.BY_BLOB:
            layer_rows = self._rows_of_layers()
            return sorted(row for d in self._highlight_digests if (row := layer_rows.get(d, -1)) >= 0)
        row = self._ranks().get(id(image), -1)
        return [row] if row >= 0 and self._sorted_images()[row].image is image else []

    def layers_of(self, image_row: int) -> list[BlobUsage]:
        """The layers of the image at ``image_row`` (grouped by image), in manifest order."""
        layers = self._children.get(image_row) if self._mode == self.BY_IMAGE else None
        if layers is None:
            image = self._sorted_images()[image_row].image
            usage = usage_by_digest(self._analysis)
            layers = [u for d in image.blob_digests() if (u := usage.get(d)) is not None and u.blob.role is Role.LAYER]
            if self._mode == self.BY_IMAGE:
                self._children[image_row] = layers
        return layers  # type: ignore[return-value]

    def users_of(self, layer_row: int) -> Sequence[Image]:
        """The images using the layer at ``layer_row``, in the table's order (by name)."""
        users = self._children.get(layer_row) if self._mode == self.BY_BLOB else None
        if users is None:
            rank = self._ranks()
            users = tuple(sorted(self._usages[layer_row].images, key=lambda i: rank[id(i)]))
            if self._mode == self.BY_BLOB:
                self._children[layer_row] = users
        return users  # type: ignore[return-value]

    def _sorted_images(self) -> list[ImageStats]:
        if self._images_sorted is None:
            stats = self._stats
            self._images_sorted = [stats[i] for i in name_order([s.image for s in stats])]
        return self._images_sorted

    def _ranks(self) -> dict[int, int]:
        if self._rank is None:
            self._rank = {id(s.image): row for row, s in enumerate(self._sorted_images())}
        return self._rank

    def _distinct_users(self, layer_row: int, usage: BlobUsage) -> int:
        count = self._distinct.get(layer_row)
        if count is None:
            count = self._distinct[layer_row] = distinct_images(usage.images)[0]
        return count

    # -- structure

    def _top_total(self) -> int:
        return len(self._usages) if self._mode == self.BY_BLOB else len(self._stats)

    def _top_count(self) -> int:
        """The top-level rows a view is offered now."""
        return min(self._top_total(), self._offered.get(_TOP, self.TOP_BATCH))

    def _child_total(self, row: int) -> int:
        """Every child of top-level ``row`` (offered or not); of the root (``_TOP``), every top-level row."""
        if row == _TOP:
            return self._top_total()
        if not 0 <= row < self._top_total():
            return 0
        if self._mode == self.BY_BLOB:
            return self._usages[row].count
        return len(self.layers_of(row))

    def _child_count(self, row: int) -> int:
        """The children of top-level ``row`` a view is offered now."""
        if row == _TOP:
            return self._top_count()
        return min(self._child_total(row), self._offered.get(row, self.CHILD_BATCH))

    @staticmethod
    def _key(parent: Index) -> int | None:
        """Where ``parent``'s offered rows are counted: _TOP for the root, the row of a top-level row, None
        for anything else (no children)."""
        if not parent.isValid():
            return _TOP
        return parent.row() if parent.internalId() == 0 and parent.column() == 0 else None

    def offer_through(self, row: int) -> None:
        """Offer top-level rows up to ``row`` (a view is about to show it)."""
        shown = self._top_count()
        if shown <= row < self._top_total() and not self._inserting:
            self._offer(QModelIndex(), _TOP, shown, row + 1 - shown)

    def index(self, row: int, column: int, parent: Index = _ROOT) -> QModelIndex:
        """An offered row's index (``offer_through`` makes a top-level row beyond them offered)."""
        if column < 0 or column >= len(self.HEADERS) or row < 0:
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, column, 0) if row < self._top_count() else QModelIndex()
        if parent.internalId() == 0 and parent.column() == 0 and row < self._child_count(parent.row()):
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
        if not parent.isValid():
            return self._top_total() > 0
        if parent.column() != 0 or parent.internalId() != 0 or not 0 <= parent.row() < self._top_count():
            return False
        if self._mode == self.BY_BLOB:
            return True  # a layer row exists because an image uses it
        return self._sorted_images()[parent.row()].layers > 0 or bool(self.layers_of(parent.row()))

    def canFetchMore(self, parent: Index) -> bool:
        key = self._key(parent)
        if self._inserting or key is None:
            return False  # not while rows go in: whoever listens to that may ask, and must wait
        return self._child_count(key) < self._child_total(key)

    def fetchMore(self, parent: Index) -> None:
        key = self._key(parent)
        if key is None or not self.canFetchMore(parent):
            return
        shown = self._child_count(key)
        batch = self.TOP_BATCH if key == _TOP else self.CHILD_BATCH
        self._offer(parent, key, shown, min(self._child_total(key) - shown, batch))

    def _offer(self, parent: Index, key: int, shown: int, more: int) -> None:
        self._inserting = True
        try:
            self.beginInsertRows(parent, shown, shown + more - 1)
            self._offered[key] = shown + more
            self.endInsertRows()
        finally:
            self._inserting = False

    def _want_more(self, parent_row: int) -> None:
        """A view shows the last child offered of ``parent_row``: offer the next batch once control is back in
        the event loop (a model must not change while a view paints it)."""
        if parent_row in self._wanted:
            return
        self._wanted.add(parent_row)
        generation = self._generation

        def offer() -> None:
            if generation != self._generation:
                return
            self._wanted.discard(parent_row)
            self.fetchMore(self.index(parent_row, 0))

        QTimer.singleShot(0, self, offer)

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
        row = index.row()
        if index.internalId() == 0:
            if self._mode == self.BY_BLOB:
                return self._usages[row] if row < len(self._usages) else None
            return self._sorted_images()[row] if row < len(self._stats) else None
        parent_row = index.internalId() - 1
        if not 0 <= parent_row < self._top_count():
            return None
        children = self.users_of(parent_row) if self._mode == self.BY_BLOB else self.layers_of(parent_row)
        return children[row] if row < len(children) else None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        obj = self.object_at(index)
        if obj is None:
            return None
        col = index.column()
        if role == OBJECT_ROLE:
            return obj
        top = index.internalId() == 0
        if not top and role == Qt.ItemDataRole.DisplayRole and col == self.NAME:
            parent_row = index.internalId() - 1
            offered = self._child_count(parent_row)
            if index.row() == offered - 1 and offered < self._child_total(parent_row):
                self._want_more(parent_row)
        if isinstance(obj, BlobUsage):
            if top:
                marked = obj.blob.digest in self._highlight_digests
                users = self._distinct_users(index.row(), obj) if col == self.USED_BY else 0
            else:
                marked = self._highlight_image is not None and (
                    self._sorted_images()[index.internalId() - 1].image is self._highlight_image
                )
                row = self._rows_of_layers().get(obj.blob.digest, -1) if col == self.USED_BY else -1
                users = self._distinct_users(row, obj) if row >= 0 else distinct_images(obj.images)[0]
            return self._blob_data(obj, col, role, marked, users, index.row() if top else -1)
        stats = obj if isinstance(obj, ImageStats) else None
        image = obj.image if isinstance(obj, ImageStats) else obj
        return self._image_data(image, stats, col, role, image is self._highlight_image)

    def _blob_data(self, usage: BlobUsage, col: int, role: int, marked: bool, users: int, row: int) -> Any:
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
            return used_by_count_text(users, usage.count)
        if role == SORT_ROLE:
            return (str(blob.digest), blob.size, blob.media_type, users)[col]
        if broken and role in (Qt.ItemDataRole.BackgroundRole, Qt.ItemDataRole.ForegroundRole):
            return status_brush(Severity.ERROR, role)
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == self.NAME:
                held = "\nthe base compared with holds this layer" if blob.digest in self._in_base else ""
                return str(blob.digest) + held + (f"\nverify: {broken}" if broken else "")
            if col == self.SIZE:
                return f"{blob.size:,} bytes"
            if col == self.USED_BY:
                names = self.users_of(row)[:30] if row >= 0 and self._mode == self.BY_BLOB else usage.images[:30]
                return "\n".join(image.name for image in names) + (
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
