"""``regpack-gui [PATH]``: the desktop window. Without PATH it opens the small sample bundle shipped with it."""

from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
import time
import traceback
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication

from regpack.gui.assets import app_icon, sample_bundle, style_sheet
from regpack.gui.window import Loaded, MainWindow, error_text

ORGANIZATION = "regpack"
APPLICATION = "regpack-gui"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="regpack-gui",
        description="Browse what container images in a bundle share; pack, unpack and verify bundles.",
    )
    parser.add_argument(
        "path", nargs="?", type=Path, help="a skopeo dir tree, registry storage or OCI layout (default: the sample)"
    )
    entry = parser.add_mutually_exclusive_group()
    entry.add_argument(
        "--install-desktop-entry",
        action="store_true",
        help="add regpack to the desktop's application menu for this user (XDG_DATA_HOME) and exit",
    )
    entry.add_argument(
        "--uninstall-desktop-entry", action="store_true", help="remove what --install-desktop-entry added and exit"
    )
    # Used by bench/gui_load.py: print load figures as JSON once the window is populated, then quit.
    parser.add_argument("--exit-after-load", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_known_args(argv)[0]


def create_application(argv: list[str]) -> QApplication:
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        app = QApplication(argv)
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("regpack")
    app.setDesktopFileName("regpack")
    app.setWindowIcon(app_icon())
    app.setStyleSheet(style_sheet())
    return app


def desktop_entry(install: bool) -> int:
    """--install-desktop-entry / --uninstall-desktop-entry: plain files, no Qt and no display needed."""
    from regpack.gui.desktop import install_desktop_entry, uninstall_desktop_entry

    try:
        paths = install_desktop_entry() if install else uninstall_desktop_entry()
    except OSError as e:
        print(f"regpack-gui: error: {e.filename or ''} {e.strerror or e}".strip(), file=sys.stderr)
        return 1
    verb = "wrote" if install else "removed"
    for path in paths:
        print(f"{verb} {path}")
    if not paths:
        print("no desktop entry was installed")
    return 0


class ExceptionReporter(QObject):
    """``sys.excepthook`` (and ``threading.excepthook``): an unexpected exception reaches the error dialog,
    with its traceback under "Show Details", instead of only stderr. From other threads it is queued to the
    GUI thread, where this object lives."""

    raised = Signal(str, str)  # message, details

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.raised.connect(lambda message, details: window.show_error("Unexpected error", message, details))

    def hook(self, etype: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        traceback.print_exception(etype, value, tb)  # stderr keeps it too, for bug reports
        if issubclass(etype, KeyboardInterrupt):
            QApplication.exit(130)
            return
        message, details = error_text(value)
        if not details:
            details = "".join(traceback.format_exception(etype, value, tb))
        self.raised.emit(message, details)

    def thread_hook(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            self.hook(args.exc_type, args.exc_value, args.exc_traceback)

    def install(self) -> None:
        sys.excepthook = self.hook
        threading.excepthook = self.thread_hook


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    early = parse_args(argv[1:])  # --help and the desktop entry need no display
    if early.install_desktop_entry or early.uninstall_desktop_entry:
        return desktop_entry(early.install_desktop_entry)
    app = create_application(argv)
    args = parse_args(app.arguments()[1:])  # Qt has taken its own options (-platform, -qwindowgeometry, ...)
    window = MainWindow()
    ExceptionReporter(window).install()
    window.show()
    if args.exit_after_load:
        started = time.monotonic()

        def report(loaded: Loaded) -> None:
            def done() -> None:
                figures = {
                    "images": window.image_model.rowCount(),
                    "layers_rows": window.blob_model.rowCount(),
                    "load_seconds": round(time.monotonic() - started, 3),
                    "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                }
                print(json.dumps(figures), flush=True)
                window.close()
                app.quit()

            QTimer.singleShot(0, done)  # after the views have painted the new content once

        window.bundle_loaded.connect(report)
        window.load_failed.connect(lambda message: (print(message, file=sys.stderr), app.exit(1)))
    window.open_bundle(args.path if args.path is not None else sample_bundle())
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
