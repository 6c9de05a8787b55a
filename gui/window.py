"""The main window: images table, shared-layers tree, savings chart, details, Verify view, and the jobs."""

from __future__ import annotations

import re
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from PySide6.QtCore import QItemSelection, QModelIndex, QPoint, QRect, QSettings, QSize, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QIcon,
    QKeySequence,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QStyle,
    QTableView,
    QTabWidget,
    QToolButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from regpack import __version__, jobs
from regpack.analysis import Analysis, BlobUsage, Diff, ImageStats, analyse, compare, diff, held_by_base
from regpack.archive import check_archive_destination
from regpack.bundle import Bundle, Image, Layout
from regpack.errors import Cancelled, RegpackError, Severity, worst_by_image
from regpack.gui.archive_info import ARCHIVE_FILTER, ArchiveFacts, archive_facts, looks_like_archive
from regpack.gui.assets import sample_bundle
from regpack.gui.chart import SavingsView
from regpack.gui.compare import CompareView
from regpack.gui.details import DetailsView
from regpack.gui.dialogs import (
    FOLDER,
    PACK,
    UNPACK,
    ErrorDialog,
    JobDialog,
    JobOptions,
    ProgressPanel,
    ResultDialog,
    job_summary,
    with_output,
)
from regpack.gui.jobs import Job, JobController, JobKind, needed_bytes, prepare
from regpack.gui.models import (
    OBJECT_ROLE,
    BadBlob,
    BlobTreeModel,
    ImageFilterProxy,
    ImageTableModel,
    used_by_text,
)
from regpack.gui.pull_dialog import PullDialog, PullOptions, pull_job, pull_summary
from regpack.gui.push_dialog import PushDialog, PushOptions, dry_run_text, push_job, push_summary
from regpack.gui.release import Base, ReleaseView, load_base
from regpack.gui.sizes import human_size
from regpack.gui.theme import set_text_color, status_colors
from regpack.gui.verify_view import VerifyView
from regpack.jobs import JobResult
from regpack.layouts import READING, read
from regpack.progress import Estimate, Progress, ProgressCallback
from regpack.pull import PullResult
from regpack.push import PushResult
from regpack.verify import Report, verify

MAX_RECENT = 8


@dataclass(frozen=True, slots=True)
class Loaded:
    path: Path
    bundle: Bundle
    analysis: Analysis
    archive: ArchiveFacts | None = None  # size and sidecar sha256 when the bundle is an archive


ANALYSING = "analysing"  # the progress message while core's analysis runs, after the read


def load_bundle(
    path: Path,
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    on_read: Callable[[Bundle], None] | None = None,
) -> Loaded:
    """Read and analyse a bundle (runs on a worker thread: no Qt here). ``on_read`` hears of the bundle as soon
    as it is read, before the analysis (the window shows the images then); ``cancel`` stops the read between
    two images, and the analysis within an image."""
    bundle = read(path, progress=progress, cancel=cancel)
    if cancel is not None and cancel.is_set():
        raise Cancelled()
    if on_read is not None:
        on_read(bundle)
    if progress is not None:
        count = len(bundle.images)
        progress(Progress(0, 0, count, count, ANALYSING))
    analysis = analyse(bundle, cancel=cancel)
    return Loaded(path, bundle, analysis, archive_facts(bundle))


def problem_statuses(bundle: Bundle) -> dict[str | None, Severity]:
    """The worst severity of what reading found, for each image it found something about: the rows to colour."""
    return worst_by_image((), bundle.problems)


def user_paths(message: str, dest: Path) -> str:
    """Name the user's destination where a message names the staging folder it is written through."""
    staged = re.compile(re.escape(str(dest)) + r"\.partial-[^/\s:]*")
    return staged.sub(lambda _: str(dest), message)


def error_text(exc: BaseException) -> tuple[str, str]:
    """(message, details): core's own message for its errors; for anything else the traceback as details."""
    if isinstance(exc, RegpackError):
        return str(exc), ""
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}", ""
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return f"{type(exc).__name__}: {exc}", details


DEFAULT_SIZE = QSize(1380, 860)
NEXT_STEP = (
    "No bundle open: open a bundle folder (Ctrl+O) or archive (Ctrl+Shift+O), drop one on this window, "
    "or open the sample bundle (File > Open sample bundle)."
)
MORE_KEYS = (
    ("Tab / Shift+Tab", "Move between the filter, images, layers and the side panel"),
    ("Ctrl+click", "Select a second image to compare the two"),
)


FIT_SAMPLE = 300  # rows whose text sizes a column: the first ones, so that a big bundle stays quick


def text_width(view: QAbstractItemView, texts: Iterable[object]) -> int:
    """Pixels a column of ``view`` needs for the widest of ``texts`` in the view's font, with the margins the
    item delegate draws around a text."""
    metrics = view.fontMetrics()
    margin = (view.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, view) + 1) * 2 + 1
    widths = [metrics.horizontalAdvance(text) for text in {t for t in texts if isinstance(t, str)}]
    return max(widths, default=0) + margin


def initial_size(available: QRect) -> QSize:
    """The first-run size: the roomy default, or most of a smaller screen (taskbars already excluded)."""
    return QSize(
        min(DEFAULT_SIZE.width(), available.width() * 94 // 100),
        min(DEFAULT_SIZE.height(), available.height() * 92 // 100),
    )


def scrolled(widget: QWidget) -> QScrollArea:
    """``widget`` in a frameless scroll area: its minimum size no longer sets the window's."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidget(widget)
    return area


class _Panel(QWidget):
    """A titled area: bold title, optional controls on the right, then the body."""

    def __init__(self, title: str, body: QWidget, *extra: QWidget) -> None:
        super().__init__()
        self.title_label = QLabel(title)
        self.title_label.setObjectName("panelTitle")
        header = QHBoxLayout()
        header.addWidget(self.title_label)
        header.addStretch(1)
        for widget in extra:
            header.addWidget(widget)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(2)
        layout.addLayout(header)
        layout.addWidget(body, 1)


class MainWindow(QMainWindow):
    images_shown = Signal(object)  # Bundle: the images table shows every image of the bundle being opened
    bundle_loaded = Signal(object)  # Loaded, after every view shows it
    load_failed = Signal(str)
    _bundle_read = Signal(int, object, object)  # from the reading thread: which open, the Bundle, an Event to set
    job_ended = Signal(str)  # the job kind, after finished/failed/cancelled was handled
    compared = Signal(object)  # regpack.analysis.Diff, or None when the comparison is cleared

    def __init__(self, settings: QSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings if settings is not None else QSettings()
        self.jobs = JobController(self)
        self.jobs.started.connect(self._job_started)
        self.jobs.progress.connect(self._job_progress)
        self.jobs.finished.connect(self._job_finished)
        self.jobs.failed.connect(self._job_failed)
        self.jobs.cancelled.connect(self._job_cancelled)
        self.jobs.ended.connect(self._job_ended)
        self.jobs.cleanup_changed.connect(self._cleanup_changed)
        self.bundle: Bundle | None = None
        self.analysis: Analysis | None = None
        self.archive: ArchiveFacts | None = None
        self.loading_path: Path | None = None
        self._load_count = 0  # which open is the latest: a read or result of an earlier one is dropped
        self._replaced: tuple[Bundle | None, Analysis | None, ArchiveFacts | None] | None = None
        self._bundle_read.connect(self._show_read)
        self.job_options: JobOptions | None = None
        self.job_dialog: JobDialog | None = None
        self.result_dialog: ResultDialog | None = None
        self.error_dialog: ErrorDialog | None = None
        self.info_dialog: QMessageBox | None = None
        self.push_dialog: PushDialog | None = None
        self.pull_dialog: PullDialog | None = None
        self.base: Base | None = None  # what the open bundle is compared with
        self.release_diff: Diff | None = None
        self.archive_dialog: QFileDialog | None = None
        self.setWindowTitle("")  # Qt adds the application's display name, "regpack"
        self.setAcceptDrops(True)
        self._build_actions()
        self._build_ui()
        self._restore_state()
        self._rebuild_recent()
        self._update_actions()

    # ---------------------------------------------------------------------------------------------- building

    def _icon(self, pixmap: QStyle.StandardPixmap) -> QIcon:
        return self.style().standardIcon(pixmap)

    def _build_actions(self) -> None:
        sp = QStyle.StandardPixmap
        self.open_action = QAction(self._icon(sp.SP_DirOpenIcon), "&Open bundle…", self)
        self.open_action.setShortcut(QKeySequence.StandardKey.Open)
        self.open_action.setToolTip("Open a skopeo dir tree, registry storage or OCI layout folder")
        self.open_action.triggered.connect(self.choose_bundle)
        self.open_archive_action = QAction("Open &archive…", self)
        self.open_archive_action.setShortcut("Ctrl+Shift+O")
        self.open_archive_action.setToolTip("Open a .tar or .tar.zst archive, or the .000 part of a split one")
        self.open_archive_action.triggered.connect(self.choose_archive)
        self.sample_action = QAction("Open &sample bundle", self)
        self.sample_action.triggered.connect(lambda: self.open_bundle(sample_bundle()))
        self.reload_action = QAction(self._icon(sp.SP_BrowserReload), "&Reload", self)
        self.reload_action.setShortcut(QKeySequence.StandardKey.Refresh)
        self.reload_action.triggered.connect(self.reload)
        self.pack_action = QAction(self._icon(sp.SP_DialogSaveButton), "&Pack…", self)
        self.pack_action.setShortcut("Ctrl+P")
        self.pack_action.setToolTip("Pack into registry v2 storage: every blob once")
        self.pack_action.triggered.connect(lambda: self.ask_job(PACK))
        self.unpack_action = QAction(self._icon(sp.SP_ArrowDown), "&Unpack…", self)
        self.unpack_action.setShortcut("Ctrl+U")
        self.unpack_action.setToolTip("Unpack into one skopeo dir folder per image")
        self.unpack_action.triggered.connect(lambda: self.ask_job(UNPACK))
        self.push_action = QAction("P&ush…", self)
        self.push_action.setToolTip("Push every image into a registry under its full name, digests unchanged")
        self.push_action.triggered.connect(self.ask_push)
        self.pull_action = QAction("Pu&ll…", self)
        self.pull_action.setToolTip("Fetch a list of images from registries into a new bundle")
        self.pull_action.triggered.connect(self.ask_pull)
        self.verify_action = QAction(self._icon(sp.SP_DialogApplyButton), "&Verify", self)
        self.verify_action.setShortcut("Ctrl+Shift+V")
        self.verify_action.setToolTip("Re-hash every blob and check every reference and link")
        self.verify_action.triggered.connect(self.start_verify)
        self.copy_digest_action = QAction("&Copy digest", self)
        self.copy_digest_action.setShortcut(QKeySequence.StandardKey.Copy)
        self.copy_digest_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.copy_digest_action.triggered.connect(self.copy_digests)
        self.copy_name_action = QAction("Copy &name", self)
        self.copy_name_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.copy_name_action.triggered.connect(self.copy_names)
        self.quit_action = QAction("&Quit", self)
        self.quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        self.quit_action.triggered.connect(self.close)
        self.compare_folder_action = QAction("Compare with &folder…", self)
        self.compare_folder_action.setToolTip("Compare with a base bundle folder: what a patch must carry")
        self.compare_folder_action.triggered.connect(lambda: self.choose_base(folder=True))
        self.compare_file_action = QAction("Compare with &archive or inventory…", self)
        self.compare_file_action.setToolTip("Compare with a base archive, or an inventory of what a site holds")
        self.compare_file_action.triggered.connect(lambda: self.choose_base(folder=False))
        self.clear_compare_action = QAction("C&lear comparison", self)
        self.clear_compare_action.triggered.connect(self.clear_comparison)
        self.find_action = QAction("&Filter images", self)
        self.find_action.setShortcut(QKeySequence.StandardKey.Find)
        self.find_action.triggered.connect(lambda: self.search.setFocus())

    def _build_ui(self) -> None:
        self.recent_menu = QMenu("Open &recent", self)
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.open_action)
        file_menu.addAction(self.open_archive_action)
        file_menu.addMenu(self.recent_menu)
        file_menu.addAction(self.sample_action)
        file_menu.addAction(self.reload_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        bundle_menu = self.menuBar().addMenu("&Bundle")
        for action in (self.pack_action, self.unpack_action, self.verify_action, self.push_action, self.pull_action):
            bundle_menu.addAction(action)
        bundle_menu.addSeparator()
        self.compare_menu = QMenu("Compare with…", self)
        self.compare_menu.addAction(self.compare_folder_action)
        self.compare_menu.addAction(self.compare_file_action)
        for action in (self.compare_folder_action, self.compare_file_action, self.clear_compare_action):
            bundle_menu.addAction(action)
        edit_menu = self.menuBar().addMenu("&Edit")
        edit_menu.addAction(self.copy_digest_action)
        edit_menu.addAction(self.copy_name_action)
        edit_menu.addAction(self.find_action)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction("&Keyboard shortcuts", self.show_shortcuts)
        help_menu.addAction("&About regpack", self.show_about)

        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("mainToolbar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.addAction(self.open_action)
        open_button = toolbar.widgetForAction(self.open_action)
        if isinstance(open_button, QToolButton):
            open_button.setMenu(self.recent_menu)
            open_button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        toolbar.addSeparator()
        toolbar.addAction(self.pack_action)
        toolbar.addAction(self.unpack_action)
        toolbar.addAction(self.verify_action)
        self.compare_button = QToolButton()
        self.compare_button.setText("Compare with…")
        self.compare_button.setToolTip("Compare with a base: the previous release, or an inventory of a site")
        self.compare_button.setMenu(self.compare_menu)
        self.compare_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        toolbar.addWidget(self.compare_button)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        toolbar.addWidget(spacer)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter images (name, tag, digest, platform)…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._search_changed)
        toolbar.addWidget(self.search)

        # images table
        self.image_model = ImageTableModel(self)
        self.proxy = ImageFilterProxy(self)
        self.proxy.setSourceModel(self.image_model)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(ImageTableModel.REPOSITORY, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # names differ at their ends as often
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        for col, width in enumerate((125, 50, 205, 55, 72, 72, 72, 100, 80, 72, 72)):
            header.resizeSection(col, width)
        for offset, column in enumerate(ImageTableModel.COMPARED):  # beside the name, shown while comparing
            header.moveSection(header.visualIndex(column), 2 + offset)
            self.table.setColumnHidden(column, True)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.table.addAction(self.copy_digest_action)
        self.table.addAction(self.copy_name_action)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.images_panel = _Panel("Images", self.table)

        # shared layers tree
        self.blob_model = BlobTreeModel(self)
        self.tree = QTreeView()
        self.tree.setModel(self.blob_model)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        tree_header = self.tree.header()
        tree_header.setStretchLastSection(True)
        for col, width in enumerate((250, 80, 330, 80)):
            tree_header.resizeSection(col, width)
        # "Used by" right after the name: the long media type last, where it may be cut without loss
        tree_header.moveSection(tree_header.visualIndex(BlobTreeModel.USED_BY), 1)
        self.tree.activated.connect(self._tree_activated)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._tree_menu)
        self.group_check = QCheckBox("Group by image")
        self.group_check.toggled.connect(self._group_toggled)
        self.layers_panel = _Panel("Shared layers", self.tree, self.group_check)

        self.left_splitter = QSplitter(Qt.Orientation.Vertical)
        self.left_splitter.setObjectName("leftSplitter")
        self.left_splitter.addWidget(self.images_panel)
        self.left_splitter.addWidget(self.layers_panel)

        self.savings = SavingsView()
        self.details = DetailsView()
        self.details.layer_users_requested.connect(self.show_layer_users)
        self.verify_view = VerifyView()
        self.verify_view.verify_requested.connect(self.start_verify)
        self.verify_view.export_failed.connect(self.show_error)
        self.tabs = QTabWidget()
        self.savings_page = scrolled(self.savings)
        self.tabs.addTab(self.savings_page, "Savings")
        self.tabs.addTab(self.details, "Details")
        self.tabs.addTab(self.verify_view, "Verify")
        self.compare_view = CompareView()
        self.tabs.addTab(self.compare_view, "Compare")
        self.release_view = ReleaseView()
        self.release_view.clear_requested.connect(self.clear_comparison)
        self.tabs.addTab(self.release_view, "Base")
        self.verify_view.exported.connect(lambda path: self.statusBar().showMessage(f"Report written to {path}", 20000))
        self.verify_view.blob_activated.connect(self._show_bad_blob)

        self.main_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.main_splitter.setObjectName("mainSplitter")
        self.main_splitter.addWidget(self.left_splitter)
        self.main_splitter.addWidget(self.tabs)
        self.main_splitter.setStretchFactor(0, 3)
        self.main_splitter.setStretchFactor(1, 2)
        self.setCentralWidget(self.main_splitter)

        self.summary_label = QLabel("No bundle open")
        # The summary may be long (a deep path): it gives way first, so progress and Cancel stay visible.
        self.summary_label.setMinimumWidth(80)
        self.summary_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.archive_label = QLabel()  # an opened archive's size and sha256 (from its sidecar)
        self.archive_label.setObjectName("archiveLabel")
        self.archive_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.archive_label.hide()
        self.problems_label = QLabel()
        self.problems_label.setObjectName("problemsLabel")
        set_text_color(self.problems_label, status_colors().error_text)
        self.progress = ProgressPanel()
        self.progress.cancel_requested.connect(self.cancel_job)
        # Tab walks the main areas in reading order; inside a table the arrow keys move, not Tab.
        for view in (self.table, self.tree):
            view.setTabKeyNavigation(False)
        self.setTabOrder(self.search, self.table)
        self.setTabOrder(self.table, self.tree)
        self.setTabOrder(self.tree, self.tabs)
        self.statusBar().addWidget(self.summary_label, 1)
        self.statusBar().addWidget(self.archive_label)
        self.statusBar().addWidget(self.problems_label)
        self.cleanup_label = QLabel("Removing the cancelled job's partial output…")
        self.cleanup_label.hide()
        self.statusBar().addPermanentWidget(self.cleanup_label)
        self.statusBar().addPermanentWidget(self.progress)

    # ---------------------------------------------------------------------------------------------- state

    def _restore_state(self) -> None:
        available = self.screen().availableGeometry()
        geometry = self.settings.value("window/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(initial_size(available))
        elif self.width() > available.width() or self.height() > available.height():
            self.resize(self.size().boundedTo(available.size()))  # saved on a bigger screen
        # Splitter sizes only mean something once the window has its size: applied on the first show.
        self._pending_splitters = True
        self.group_check.setChecked(bool(self.settings.value("window/group_by_image", False, type=bool)))
        tab = self.settings.value("window/tab", 0, type=int)
        self.tabs.setCurrentIndex(tab if isinstance(tab, int) else 0)

    def save_state(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/main_splitter", self.main_splitter.saveState())
        self.settings.setValue("window/left_splitter", self.left_splitter.saveState())
        self.settings.setValue("window/group_by_image", self.group_check.isChecked())
        self.settings.setValue("window/tab", self.tabs.currentIndex())
        self.settings.sync()

    def recent_bundles(self) -> list[str]:
        value = self.settings.value("recent", [], type=list)
        return [str(v) for v in value if v] if isinstance(value, list) else []

    def _add_recent(self, path: Path) -> None:
        text = str(path)
        recent = [text, *(p for p in self.recent_bundles() if p != text)][:MAX_RECENT]
        self.settings.setValue("recent", recent)
        self._rebuild_recent()

    def _rebuild_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_bundles()
        for text in recent:
            action = self.recent_menu.addAction(text)
            action.triggered.connect(partial(self.open_bundle, Path(text)))
        if not recent:
            self.recent_menu.addAction("(no recent bundles)").setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", self._clear_recent)

    def _clear_recent(self) -> None:
        self.settings.setValue("recent", [])
        self._rebuild_recent()

    def busy(self) -> bool:
        return self.jobs.busy

    def _update_actions(self) -> None:
        busy = self.busy()
        has = self.bundle is not None
        layout = self.bundle.layout if self.bundle is not None else None
        for action in (self.open_action, self.open_archive_action, self.sample_action):
            action.setEnabled(not busy)
        self.recent_menu.setEnabled(not busy)
        self.reload_action.setEnabled(has and not busy)
        self.pack_action.setEnabled(has and not busy and layout is not Layout.REGISTRY)
        self.unpack_action.setEnabled(has and not busy and layout is not Layout.SKOPEO_DIR)
        self.verify_action.setEnabled(has and not busy)
        self.push_action.setEnabled(has and not busy)
        self.pull_action.setEnabled(not busy)
        for action in (self.compare_folder_action, self.compare_file_action):
            action.setEnabled(has and not busy)
        self.compare_button.setEnabled(has and not busy)
        self.clear_compare_action.setEnabled(self.base is not None and not busy)
        self.verify_view.verify_button.setEnabled(has and not busy)

    # ---------------------------------------------------------------------------------------------- opening

    def choose_bundle(self) -> None:
        start = str(self.bundle.root.parent) if self.bundle is not None else str(Path.home())
        chosen = QFileDialog.getExistingDirectory(self, "Open bundle folder", start)
        if chosen:
            self.open_bundle(Path(chosen))

    def choose_archive(self) -> QFileDialog:
        """File > Open archive: a file dialog for .tar, .tar.zst and the .000 part of a split archive
        (non-blocking; choosing a file opens it)."""
        start = str(self.bundle.root.parent) if self.bundle is not None else str(Path.home())
        dialog = QFileDialog(self, "Open archive", start, f"{ARCHIVE_FILTER};;All files (*)")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptOpen)
        dialog.fileSelected.connect(lambda chosen: self.open_bundle(Path(chosen)))
        self.archive_dialog = dialog
        dialog.open()
        return dialog

    def reload(self) -> None:
        if self.bundle is not None:
            self.open_bundle(self.bundle.root)

    def open_bundle(self, path: Path | str) -> bool:
        """Start reading ``path`` on the thread pool; the views fill in when it is done."""
        if self.busy():
            self.statusBar().showMessage("Busy: wait for the running job to end first", 5000)
            return False
        path = Path(path).expanduser().absolute()
        self.loading_path = path
        self._load_count += 1
        self._replaced = None
        self.summary_label.setText(f"Loading {path}…")
        count = self._load_count

        def run(progress: ProgressCallback, cancel: threading.Event) -> Loaded:
            def on_read(bundle: Bundle) -> None:
                # The table is filled on this window's thread; the analysis waits for it, since both would
                # only slow each other down (one interpreter lock), and the images are what is wanted first.
                shown = threading.Event()
                self._bundle_read.emit(count, bundle, shown)  # queued: the signal's object lives there
                while not shown.wait(0.1) and not cancel.is_set():
                    pass

            return load_bundle(path, progress=progress, cancel=cancel, on_read=on_read)

        job = Job(JobKind.LOAD, f"Reading {path.name}", run, detach_on_cancel=True)
        return self.jobs.start(job)

    def _show_read(self, count: int, bundle: Bundle, shown: threading.Event) -> None:
        """The bundle being opened is read: its images go into the table at once; the layers tree, the
        numbers and the chart follow when core's analysis of it is done (``_loaded``)."""
        try:
            if count != self._load_count or self.loading_path is None:
                return  # an earlier open, or a cancelled one
            self._replaced = (self.bundle, self.analysis, self.archive)
            self.show_images(bundle)
        finally:
            shown.set()
        self.images_shown.emit(bundle)

    def _loaded(self, loaded: Loaded) -> None:
        if loaded.path != self.loading_path:
            return
        self.loading_path = None
        self._replaced = None
        if self.bundle is loaded.bundle:
            self.show_analysis(loaded.analysis, loaded.archive)
        else:
            self.show_bundle(loaded.bundle, loaded.analysis, loaded.archive)
        self._add_recent(loaded.path)
        self.bundle_loaded.emit(loaded)

    def _load_failed(self, exc: BaseException) -> None:
        path = self.loading_path
        self.loading_path = None
        self._restore_replaced()
        message, details = error_text(exc)
        if self.bundle is None:
            self.summary_label.setText(NEXT_STEP)
            self.savings.summary.setText(NEXT_STEP)
        else:
            self.summary_label.setText(self._summary_text())
        self.show_error(f"Cannot open {path}", message, details)
        self.load_failed.emit(message)

    def _load_cancelled(self) -> None:
        path = self.loading_path
        self.loading_path = None
        self._restore_replaced()
        self.summary_label.setText(self._summary_text() if self.bundle is not None else NEXT_STEP)
        self.statusBar().showMessage(f"Opening {path} cancelled.", 10000)

    def _restore_replaced(self) -> None:
        """After a cancelled or failed open whose images were shown already: what was open before, again."""
        replaced, self._replaced = self._replaced, None
        if replaced is None:
            return
        bundle, analysis, archive = replaced
        if bundle is not None and analysis is not None:
            self.show_bundle(bundle, analysis, archive)
        else:
            self.show_nothing()

    def show_bundle(self, bundle: Bundle, analysis: Analysis, archive: ArchiveFacts | None = None) -> None:
        self.show_images(bundle)
        self.show_analysis(analysis, archive)

    def show_images(self, bundle: Bundle) -> None:
        """Every view on ``bundle`` as read, before its analysis: the images table filled (sortable, filtered,
        selectable); the numbers, the layers tree and the chart say they are being counted."""
        self.bundle, self.analysis, self.archive = bundle, None, None
        self.archive_label.hide()
        self.image_model.set_images(bundle.images)
        self.blob_model.set_analysis(None)
        self.savings.set_analysis(None, pending=True)
        self.verify_view.clear()
        self.details.set_image(bundle, None, None)
        self.image_model.set_status(problem_statuses(bundle))
        self.setWindowTitle(bundle.root.name)  # shown as "<name> — regpack": the name once, then the program
        self.summary_label.setText(self._summary_text())
        self.summary_label.setToolTip(self._summary_text())
        self._show_problems(bundle)
        self.images_panel.title_label.setText(f"Images ({len(bundle.images)})")
        self.layers_panel.title_label.setText("Shared layers (counting…)")
        self._fit_table_columns()
        if self.proxy.rowCount():
            self.table.selectRow(0)

    def show_analysis(self, analysis: Analysis, archive: ArchiveFacts | None = None) -> None:
        """Core's analysis of the bundle shown: the table's numbers, the layers tree, details and the chart."""
        bundle = self.bundle
        assert bundle is not None
        self.analysis, self.archive = analysis, archive
        self.archive_label.setText(archive.text() if archive is not None else "")
        self.archive_label.setToolTip(archive.tooltip() if archive is not None else "")
        self.archive_label.setVisible(archive is not None)
        self.image_model.set_analysis(analysis)
        self.blob_model.set_analysis(analysis)
        self.savings.set_analysis(analysis)
        self.layers_panel.title_label.setText("Shared layers")
        self.summary_label.setText(self._summary_text())
        self.summary_label.setToolTip(self._summary_text())
        self._fit_table_columns(ImageTableModel.ANALYSED)
        self._fit_tree_columns()
        self._apply_base()
        self._selection_changed(QItemSelection(), QItemSelection())  # details and marks with the numbers
        top = self.blob_model.index(0, 0)
        if self.blob_model.mode == BlobTreeModel.BY_BLOB and 0 < self.blob_model.rowCount(top) <= 12:
            self.tree.expand(top)  # the most shared layer, and who shares it (when that list is short)

    def show_nothing(self) -> None:
        """No bundle open: every view empty, the status bar says what to do next."""
        self.bundle, self.analysis, self.archive = None, None, None
        self.archive_label.hide()
        self.image_model.set_images([])
        self.blob_model.set_analysis(None)
        self.savings.set_analysis(None)
        self.savings.summary.setText(NEXT_STEP)
        self.verify_view.clear()
        self.details.set_image(None, None, None)
        self.setWindowTitle("")
        self.summary_label.setText(NEXT_STEP)
        self.summary_label.setToolTip("")
        self._show_problems(None)
        self.images_panel.title_label.setText("Images")
        self.layers_panel.title_label.setText("Shared layers")
        self._apply_base()

    def _fit_columns(self) -> None:
        self._fit_table_columns()
        self._fit_tree_columns()

    def _fit_table_columns(self, columns: Iterable[int] | None = None) -> None:
        """Columns sized to what they hold (the first rows sampled: big bundles stay quick), within caps;
        tags are kept whole where they are not absurdly long, names lose their middle rather than their end."""
        header = self.table.horizontalHeader()
        rows = range(min(self.proxy.rowCount(), FIT_SAMPLE))
        caps = {
            ImageTableModel.REPOSITORY: (90, 340),
            ImageTableModel.TAG: (50, 200),
            ImageTableModel.KIND: (60, 230),
            ImageTableModel.LAYERS: (40, 80),
            ImageTableModel.SIZE: (60, 100),
            ImageTableModel.UNIQUE: (60, 100),
            ImageTableModel.SHARED: (60, 100),
            ImageTableModel.STATUS: (70, 100),
            ImageTableModel.NEW: (78, 100),
            ImageTableModel.IN_BASE: (60, 100),
        }
        for column, (low, cap) in caps.items():
            if columns is not None and column not in columns:
                continue
            texts = (self.proxy.index(row, column).data() for row in rows)
            wanted = max(text_width(self.table, texts), header.sectionSizeHint(column))
            header.resizeSection(column, min(max(wanted, low), cap))

    def _fit_tree_columns(self) -> None:
        tree_header = self.tree.header()
        model = self.blob_model
        rows = range(min(model.rowCount(), FIT_SAMPLE))
        for column, (low, cap) in {
            BlobTreeModel.NAME: (160, 320),
            BlobTreeModel.SIZE: (60, 100),
            BlobTreeModel.USED_BY: (90, 150),
            BlobTreeModel.MEDIA_TYPE: (120, 300),
        }.items():
            texts = (model.index(row, column).data() for row in rows)
            wanted = text_width(self.tree, texts) + (self.tree.indentation() if column == BlobTreeModel.NAME else 0)
            wanted = max(wanted, tree_header.sectionSizeHint(column)) + 12  # marked rows are bold: a little wider
            tree_header.resizeSection(column, min(max(wanted, low), cap))

    def _summary_text(self) -> str:
        if self.bundle is None:
            return "No bundle open"
        b, a = self.bundle, self.analysis
        sizes = f"{human_size(a.dir_bytes)} as dirs, {human_size(a.packed_bytes)} packed" if a else "counting…"
        return f"{b.root}  ·  {b.layout.value}  ·  {len(b.images)} images  ·  {len(b.blobs)} blobs  ·  {sizes}"

    def _show_problems(self, bundle: Bundle | None) -> None:
        if bundle is None or not bundle.problems:
            self.problems_label.clear()
            self.problems_label.setToolTip("")
            return
        problems = bundle.problems
        errors = len(bundle.errors)
        self.problems_label.setText(
            f"⚠ {len(problems)} problem{'s' if len(problems) != 1 else ''} while reading"
            + (f" ({errors} errors)" if errors else "")
        )
        shown = "\n".join(str(p) for p in problems[:25])
        more = f"\n… and {len(problems) - 25} more: run Verify" if len(problems) > 25 else ""
        self.problems_label.setToolTip(shown + more)

    # ---------------------------------------------------------------------------------------------- base

    def choose_base(self, *, folder: bool) -> None:
        start = str(self.bundle.root.parent) if self.bundle is not None else str(Path.home())
        if folder:
            chosen = QFileDialog.getExistingDirectory(self, "Compare with a base bundle folder", start)
        else:
            chosen, _ = QFileDialog.getOpenFileName(
                self,
                "Compare with a base archive or inventory",
                start,
                "Archives and inventories (*.tar *.tar.zst *.tzst *.json);;All files (*)",
            )
        if chosen:
            self.compare_with(Path(chosen))

    def compare_with(self, path: Path | str) -> bool:
        """Read ``path`` (any bundle, archive or inventory) on the thread pool and compare the open bundle with it."""
        if self.bundle is None:
            return False
        if self.busy():
            self.statusBar().showMessage("Busy: wait for the running job to end first", 5000)
            return False
        path = Path(path).expanduser().absolute()
        job = Job(
            JobKind.COMPARE,
            f"Reading the base {path.name}",
            partial(load_base, path),
            cancellable=False,
            on_result=self._base_loaded,
        )
        return self.jobs.start(job)

    def _base_loaded(self, base: Base) -> None:
        self.base = base
        self._apply_base()
        self.tabs.setCurrentWidget(self.release_view)
        self.statusBar().showMessage(f"Compared with {base.path}", 10000)

    def clear_comparison(self) -> None:
        self.base = None
        self._apply_base()
        self._update_actions()

    def _apply_base(self) -> None:
        """Fill (or clear) every view's comparison columns and marks from core's diff of the open bundle."""
        base, bundle = self.base, self.bundle
        d = diff(base.inventory.blobs, base.inventory.images, bundle) if base and bundle else None
        self.release_diff = d
        self.image_model.set_diff(d.images if d is not None else ())
        for column in ImageTableModel.COMPARED:
            self.table.setColumnHidden(column, d is None)
        if d is not None:
            self._fit_columns()
        held = held_by_base(base.inventory.blobs, bundle) if base and bundle else set()
        self.blob_model.set_in_base(held)
        self.release_view.set_diff(base, d)
        self.release_view.set_image(bundle, self.current_image() if d is not None else None)
        self.compared.emit(d)

    # ---------------------------------------------------------------------------------------------- views

    def _search_changed(self, text: str) -> None:
        self.proxy.set_search(text)
        self.verify_view.set_filter(text)
        if self.bundle is not None:
            shown = self.proxy.rowCount()
            total = self.image_model.rowCount()
            label = f"Images ({shown} of {total})" if shown != total else f"Images ({total})"
            self.images_panel.title_label.setText(label)

    def selected_images(self) -> list[Image]:
        rows = self.table.selectionModel().selectedRows()
        return [self.proxy.data(index, OBJECT_ROLE).image for index in sorted(rows, key=lambda i: i.row())]

    def current_image(self) -> Image | None:
        index = self.table.currentIndex()
        if not index.isValid():
            selected = self.selected_images()
            return selected[0] if selected else None
        stats = self.proxy.data(self.proxy.index(index.row(), 0), OBJECT_ROLE)
        return stats.image if stats is not None else None

    def _selection_changed(self, selected: QItemSelection, deselected: QItemSelection) -> None:
        images = self.selected_images()
        image = images[0] if len(images) == 1 else self.current_image() if images else None
        self.details.set_image(self.bundle, self.analysis, image)
        if len(images) == 2 and self.bundle is not None:
            self.compare_view.set_comparison(compare(self.bundle, images[0], images[1]))
            if self.tabs.currentWidget() is not self.verify_view:
                self.tabs.setCurrentWidget(self.compare_view)
        elif self.compare_view.comparison is not None:
            self.compare_view.set_comparison(None)
        self.release_view.set_image(self.bundle, image)
        self.blob_model.set_highlight(image)
        self._reveal_highlight()

    def _reveal_highlight(self) -> None:
        rows = self.blob_model.highlighted_rows()
        if not rows:
            return
        self.blob_model.offer_through(rows[0])
        index = self.blob_model.index(rows[0], 0)
        if self.blob_model.mode == BlobTreeModel.BY_IMAGE:
            self.tree.expand(index)
        self.tree.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtTop)

    def _group_toggled(self, by_image: bool) -> None:
        self.blob_model.set_mode(BlobTreeModel.BY_IMAGE if by_image else BlobTreeModel.BY_BLOB)
        self._reveal_highlight()

    def _tree_activated(self, index: QModelIndex) -> None:
        obj = self.blob_model.data(index, OBJECT_ROLE)
        image = getattr(obj, "image", obj)
        if isinstance(image, Image):
            self.select_image(image)

    def tree_menu_actions(self, index: QModelIndex) -> list[QAction]:
        """What the layers tree offers for the row at ``index``: copy the full digest, show the images using a
        layer (the filter set to its digest), select an image in the table."""
        obj = self.blob_model.data(index, OBJECT_ROLE)
        actions: list[QAction] = []
        usage = obj if isinstance(obj, BlobUsage) else None
        image = obj.image if isinstance(obj, ImageStats) else obj if isinstance(obj, Image) else None
        if usage is not None:
            digest = str(usage.blob.digest)
            copy = QAction("Copy full digest", self)
            copy.triggered.connect(partial(self.copy_text, digest))
            show = QAction(f"Show the {used_by_text(usage.images)} using this layer", self)
            show.triggered.connect(partial(self.show_layer_users, digest))
            actions += [copy, show]
        if image is not None:
            select = QAction(f"Select {image.name} in the table", self)
            select.triggered.connect(partial(self.select_image, image))
            copy_image = QAction("Copy image digest", self)
            copy_image.triggered.connect(partial(self.copy_text, str(image.digest)))
            actions += [select, copy_image]
        return actions

    def _tree_menu(self, pos: QPoint) -> None:
        index = self.tree.indexAt(pos)
        actions = self.tree_menu_actions(index) if index.isValid() else []
        if actions:
            QMenu.exec(actions, self.tree.viewport().mapToGlobal(pos), None, self.tree)

    def copy_text(self, text: str) -> None:
        QGuiApplication.clipboard().setText(text)
        self.statusBar().showMessage(f"Copied {text}", 4000)

    def show_layer_users(self, digest: str) -> None:
        """Who uses this layer: the images table filtered to them, the layer's row in the tree opened."""
        self.search.setText(digest)
        if self.group_check.isChecked():
            self.group_check.setChecked(False)
        row = self.blob_model.row_of_digest(digest)
        if row >= 0:
            self.blob_model.offer_through(row)
            index = self.blob_model.index(row, 0)
            self.tree.expand(index)
            self.tree.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtTop)
            self.tree.setCurrentIndex(index)

    def _show_bad_blob(self, bad: BadBlob) -> None:
        if bad.digest is not None and self.blob_model.row_of_digest(bad.digest) >= 0:
            self.show_layer_users(bad.digest)

    def select_image(self, image: Image) -> bool:
        row = self.image_model.row_of(image)
        if row < 0:
            return False
        proxy_index = self.proxy.mapFromSource(self.image_model.index(row, 0))
        if not proxy_index.isValid():
            self.search.clear()
            proxy_index = self.proxy.mapFromSource(self.image_model.index(row, 0))
        self.table.selectRow(proxy_index.row())
        self.table.scrollTo(proxy_index)
        return True

    def copy_digests(self) -> str:
        text = "\n".join(str(image.digest) for image in self.selected_images())
        if text:
            QGuiApplication.clipboard().setText(text)
            self.statusBar().showMessage("Copied " + (text if "\n" not in text else "digests"), 4000)
        return text

    def copy_names(self) -> str:
        text = "\n".join(image.name for image in self.selected_images())
        if text:
            QGuiApplication.clipboard().setText(text)
        return text

    # ---------------------------------------------------------------------------------------------- jobs

    def _suggest_destination(self, kind: str) -> Path:
        assert self.bundle is not None
        root = self.bundle.root
        name = with_output(root.name, FOLDER)  # release.tar.zst -> release-unpacked
        base = root.parent / f"{name}-{'packed' if kind == PACK else 'unpacked'}"
        candidate, n = base, 2
        while candidate.exists():
            candidate = base.with_name(f"{base.name}-{n}")
            n += 1
        return candidate

    def ask_job(self, kind: str) -> JobDialog | None:
        """Open the Pack/Unpack dialog (non-blocking); accepting it starts the job."""
        if self.bundle is None or self.busy():
            return None
        previous = self.job_options
        if previous is None or previous.kind != kind or previous.source != self.bundle.root:
            previous = None
        dialog = JobDialog(
            kind, self.bundle.root, self._suggest_destination(kind), self, check=self.check_job, previous=previous
        )
        dialog.accepted.connect(self._job_dialog_accepted)
        self.job_dialog = dialog
        dialog.open()
        return dialog

    def check_job(self, options: JobOptions) -> str:
        """The pre-check before a pack/unpack starts: '' or why it cannot (naming the destination)."""
        total = 0
        if self.analysis is not None:
            total = self.analysis.packed_bytes if options.kind == PACK else self.analysis.dir_bytes
        if options.archive:  # a new file beside others, of about the packed size (layers are compressed already)
            try:
                check_archive_destination(options.dest.absolute(), options.split)
            except RegpackError as e:
                return str(e)
            return prepare(options.dest.parent, self.analysis.packed_bytes if self.analysis is not None else 0)
        if self.bundle is not None and self.bundle.source is not None and not options.copy:
            total = self.analysis.packed_bytes if self.analysis is not None else 0  # each blob written once
            return prepare(options.dest, total)
        return prepare(options.dest, needed_bytes(options.source, options.dest, total, copy=options.copy))

    def _job_dialog_accepted(self) -> None:
        if self.job_dialog is not None:
            self.run_job(self.job_dialog.options())

    def run_job(self, options: JobOptions) -> bool:
        def job(progress: ProgressCallback, cancel: threading.Event) -> JobResult:
            if options.kind == PACK:
                return jobs.pack(
                    options.source, options.dest, copy=options.copy, verify=options.verify, merge=options.merge,
                    base=options.base, split=options.split, progress=progress, cancel=cancel,
                )  # fmt: skip
            return jobs.unpack(
                options.source, options.dest, copy=options.copy, verify=options.verify, progress=progress, cancel=cancel
            )

        kind = JobKind.PACK if options.kind == PACK else JobKind.UNPACK
        verb = "Packing" if kind is JobKind.PACK else "Unpacking"
        self.job_options = options
        return self.jobs.start(Job(kind, f"{verb} into {options.dest.name}", job, dest=options.dest))

    def ask_push(self) -> PushDialog | None:
        if self.bundle is None or self.busy():
            return None
        dialog = PushDialog(self.bundle.root, self)
        dialog.accepted.connect(lambda: self.run_push(dialog.options()))
        self.push_dialog = dialog
        dialog.open()
        return dialog

    def run_push(self, options: PushOptions) -> bool:
        """A dry run lists the destinations at once; a push runs as a job with progress and Cancel."""
        if self.bundle is None:
            return False
        if options.dry_run:
            try:
                listing = dry_run_text(self.bundle.root, options.target)
            except RegpackError as e:
                self.show_error("Push refused", str(e))
                return False
            box = QMessageBox(QMessageBox.Icon.Information, "Push: dry run", "Nothing was contacted.", parent=self)
            box.setInformativeText(f"{len(listing.splitlines())} images would be pushed to {options.target.host}.")
            box.setDetailedText(listing)
            self.info_dialog = box
            box.open()
            return True
        title = f"Pushing to {options.target.host}"
        return self.jobs.start(Job(JobKind.PUSH, title, push_job(self.bundle.root, options)))

    def ask_pull(self) -> PullDialog | None:
        if self.busy():
            return None
        dialog = PullDialog(self)
        dialog.accepted.connect(lambda: self.run_pull(dialog.options()))
        self.pull_dialog = dialog
        dialog.open()
        return dialog

    def run_pull(self, options: PullOptions) -> bool:
        title = f"Pulling into {options.dest.name}"
        return self.jobs.start(Job(JobKind.PULL, title, pull_job(options), dest=options.dest))

    def start_verify(self) -> bool:
        if self.bundle is None or self.busy():
            return False
        root = self.bundle.root
        self.verify_view.clear()
        self.tabs.setCurrentWidget(self.verify_view)
        return self.jobs.start(Job(JobKind.VERIFY, f"Verifying {root.name}", partial(verify, root)))

    def cancel_job(self) -> None:
        if self.jobs.cancel() and self.jobs.busy:  # a read-only job is reported cancelled at once
            self.statusBar().showMessage("Cancelling: stopping the work…")

    def _cleanup_changed(self, running: int) -> None:
        self.cleanup_label.setVisible(running > 0)
        if not running:
            self.statusBar().showMessage("The cancelled job's partial output is removed.", 8000)

    def _job_started(self, job: Job) -> None:
        self.progress.start(job.title, cancellable=job.cancellable)
        if job.kind in (JobKind.LOAD, JobKind.COMPARE):
            self.progress.show_activity("reading…")  # a count, no busy bar: see ProgressPanel.show_activity
        if job.kind is not JobKind.LOAD:
            self.statusBar().showMessage(job.title + "…")
        self._update_actions()

    def _job_progress(self, job: Job, estimate: Estimate) -> None:
        p = estimate.progress
        if job.kind is JobKind.LOAD or (p.message == READING and not (p.total_bytes or p.total_files)):
            count = p.done_files
            self.progress.show_activity(f"{p.message} {count:,} image{'s' if count != 1 else ''}…")
            return
        if job.kind.writes and estimate.progress.message == "verifying" and job.dest is not None:
            self.progress.set_title(f"Verifying {job.dest.name}")
        self.progress.update_progress(estimate)

    def _transfer_finished(self, what: str, line: str, details: str, ok: bool, again: str) -> None:
        """A push or a pull ended: its summary in a message box (with what to do when some images failed)."""
        icon = QMessageBox.Icon.Information if ok else QMessageBox.Icon.Warning
        box = QMessageBox(icon, f"{what} finished" if ok else f"{what} incomplete", line, parent=self)
        box.setInformativeText("" if ok else again)
        box.setDetailedText(details)
        self.info_dialog = box
        self.statusBar().showMessage(f"{what}: {line}", 10000)
        box.open()

    def _job_finished(self, job: Job, result: object) -> None:
        kind = job.kind
        if kind is JobKind.LOAD:
            assert isinstance(result, Loaded), result
            self._loaded(result)
        elif kind is JobKind.VERIFY:
            assert isinstance(result, Report), result
            self.verify_view.set_report(result)
            self.image_model.set_status(self.verify_view.image_statuses())
            self.blob_model.set_broken(self.verify_view.broken_layers())
            self.tabs.setCurrentWidget(self.verify_view)
            self.statusBar().showMessage(self.verify_view.summary.text(), 10000)
        elif kind is JobKind.PUSH:
            assert isinstance(result, PushResult), result
            self._transfer_finished("Push", *push_summary(result), result.ok, "Push again to send what is missing.")
        elif kind is JobKind.PULL:
            assert isinstance(result, PullResult), result
            self._transfer_finished("Pull", *pull_summary(result), result.ok, "Pull again to fetch what is missing.")
            if result.ok:
                self.open_bundle(result.dest)
        elif kind in (JobKind.PACK, JobKind.UNPACK):
            assert isinstance(result, JobResult), result
            title = f"{kind.label} finished"
            dialog = ResultDialog(title, job_summary(kind.value, result), Path(result.dest), self)
            dialog.open_bundle.connect(self.open_bundle)
            self.result_dialog = dialog
            self.statusBar().showMessage(f"{title}: {result.dest}", 10000)
            dialog.open()

    def _job_failed(self, job: Job, exc: BaseException) -> None:
        if job.kind is JobKind.LOAD:
            self._load_failed(exc)
            return
        message, details = error_text(exc)
        if job.dest is not None:
            message = user_paths(message, job.dest)
        self.show_error(f"{job.kind.label} failed", message, details)

    def _job_cancelled(self, job: Job) -> None:
        if job.kind is JobKind.LOAD:
            self._load_cancelled()
            return
        left = " Nothing was written." if job.kind.writes else ""
        self.statusBar().showMessage(f"{job.kind.label} cancelled.{left}", 10000)

    def _job_ended(self, job: Job) -> None:
        self.progress.finish()
        self._update_actions()
        if job.kind is not JobKind.LOAD:
            self.job_ended.emit(job.kind.value)

    # ---------------------------------------------------------------------------------------------- errors

    def shortcuts(self) -> list[tuple[str, str]]:
        """(keys, what they do) for every action with a shortcut, then the keys no action carries."""
        out = []
        for action in self.findChildren(QAction):
            keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            if keys:
                out.append((keys, action.text().replace("&", "").rstrip("…")))
        return [*sorted(set(out)), *MORE_KEYS]

    def show_shortcuts(self) -> QMessageBox:
        rows = "".join(f"<tr><td><b>{k}</b>&nbsp;&nbsp;</td><td>{what}</td></tr>" for k, what in self.shortcuts())
        box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard shortcuts", f"<table>{rows}</table>", parent=self)
        box.setTextFormat(Qt.TextFormat.RichText)
        self.info_dialog = box
        box.open()
        return box

    def show_about(self) -> QMessageBox:
        text = (
            f"<h3>regpack {__version__}</h3>"
            "<p>Packs container-image bundles (skopeo <code>dir:</code> trees) into de-duplicated registry v2 "
            "storage and back, shows what images share, and verifies bundles.</p>"
            "<p>Licence: Apache-2.0</p>"
            "<p>Formats: <a href='https://github.com/distribution/distribution'>registry v2 storage</a> · "
            "<a href='https://github.com/containers/skopeo'>skopeo</a> · "
            "<a href='https://github.com/opencontainers/image-spec'>OCI image layout</a></p>"
        )
        box = QMessageBox(QMessageBox.Icon.Information, "About regpack", text, parent=self)
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setIconPixmap(self.windowIcon().pixmap(64, 64))
        self.info_dialog = box
        box.open()
        return box

    def show_error(self, title: str, message: str, details: str = "") -> ErrorDialog:
        """Every error reaches the user here: one dialog naming the file and the reason."""
        self.statusBar().showMessage(f"{title}: {message}", 15000)
        dialog = ErrorDialog(title, message, details, self)
        self.error_dialog = dialog
        dialog.open()
        return dialog

    # ---------------------------------------------------------------------------------------------- events

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # a bundle folder or an archive file
        if self._dropped_folder(event) is not None and not self.busy():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        folder = self._dropped_folder(event)
        if folder is not None and self.open_bundle(folder):
            event.acceptProposedAction()
        else:
            event.ignore()

    @staticmethod
    def _dropped_folder(event: QDragEnterEvent | QDropEvent) -> Path | None:
        mime = event.mimeData()
        if not mime.hasUrls():
            return None
        for url in mime.urls():
            if url.isLocalFile():
                path = Path(url.toLocalFile())
                if path.is_dir() or looks_like_archive(path):
                    return path
        return None

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._pending_splitters:
            self._pending_splitters = False
            self._restore_splitters()

    def _restore_splitters(self) -> None:
        main = self.settings.value("window/main_splitter")
        if main is None or not self.main_splitter.restoreState(main):
            width = max(self.main_splitter.width(), self.width() - 8)  # first run: the tables get more room
            self.main_splitter.setSizes([width * 58 // 100, width - width * 58 // 100])
        left = self.settings.value("window/left_splitter")
        if left is None or not self.left_splitter.restoreState(left):
            height = max(self.left_splitter.height(), 600)
            self.left_splitter.setSizes([height * 4 // 7, height - height * 4 // 7])

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_state()
        if self.jobs.busy or self.jobs.cleaning or self.jobs.detached:
            self.hide()  # the window goes at once; a running job stops and partial output is removed after
        self.jobs.shutdown()
        super().closeEvent(event)
