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

from regpack import __version__
from regpack.gui.assets import app_icon, sample_bundle, style_sheet
from regpack.gui.theme import Theme, apply_theme
from regpack.gui.window import Loaded, MainWindow, error_text

ORGANIZATION = "regpack"
APPLICATION = "regpack-gui"


# Qt's own command-line options (QGuiApplication/QApplication) and whether each takes a value: left for Qt,
# everything else is regpack-gui's and checked strictly.
QT_OPTIONS = {
    "-platform": True, "-platformpluginpath": True, "-platformtheme": True, "-plugin": True,
    "-qwindowgeometry": True, "-qwindowtitle": True, "-qwindowicon": True, "-style": True,
    "-stylesheet": True, "-display": True, "-geometry": True, "-session": True, "-name": True,
    "-reverse": False, "-widgetcount": False, "-nograb": False, "-dograb": False, "-sync": False,
}  # fmt: skip


def split_qt_options(argv: list[str]) -> tuple[list[str], list[str]]:
    """(Qt's options with their values, the rest) from command-line arguments without the program name."""
    qt: list[str] = []
    ours: list[str] = []
    args = iter(argv)
    for arg in args:
        name, has_value, _ = arg.partition("=")
        key = name[1:] if name.startswith("--") else name
        if key not in QT_OPTIONS:
            ours.append(arg)
            continue
        qt.append(arg)
        if QT_OPTIONS[key] and not has_value:
            value = next(args, None)
            if value is not None:
                qt.append(value)
    return qt, ours


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="regpack-gui",
        description="Browse what container images in a bundle share; pack, unpack and verify bundles.",
        epilog="Qt's own options (-platform, -style, -qwindowgeometry, ...) are passed to Qt.",
    )
    p.add_argument(
        "path", nargs="?", type=Path, help="a skopeo dir tree, registry storage or OCI layout (default: the sample)"
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument(
        "--theme",
        choices=[t.value for t in Theme],
        default=Theme.SYSTEM.value,
        help="colours: the desktop's (default), or Fusion light or dark",
    )
    entry = p.add_mutually_exclusive_group()
    entry.add_argument(
        "--install-desktop-entry",
        action="store_true",
        help="add regpack to the desktop's application menu for this user (XDG_DATA_HOME) and exit",
    )
    entry.add_argument(
        "--uninstall-desktop-entry", action="store_true", help="remove what --install-desktop-entry added and exit"
    )
    # Used by bench/gui_load.py: print figures as a JSON line once the images table is filled ("populated") and
    # once every view shows the bundle ("loaded"), then quit.
    p.add_argument("--exit-after-load", action="store_true", help=argparse.SUPPRESS)
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse regpack-gui's own arguments; unknown options end the program with a usage error (exit 2)."""
    return parser().parse_args(split_qt_options(argv)[1])


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


def peak_rss_kib() -> int:
    """This process's peak resident memory since it started (VmHWM); -1 where /proc does not tell."""
    try:
        with open("/proc/self/status") as status:
            return next((int(line.split()[1]) for line in status if line.startswith("VmHWM:")), -1)
    except OSError:
        return -1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    args = parse_args(argv[1:])  # --help, --version, usage errors and the desktop entry need no display
    if args.install_desktop_entry or args.uninstall_desktop_entry:
        return desktop_entry(args.install_desktop_entry)
    app = create_application(argv)
    apply_theme(app, Theme(args.theme))
    window = MainWindow()
    ExceptionReporter(window).install()
    window.show()
    if args.exit_after_load:
        started = time.monotonic()

        def figures() -> dict[str, object]:
            return {
                "images": window.image_model.rowCount(),
                "layers_rows": window.blob_model.rowCount(),
                "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,  # includes the launcher's
                "vm_hwm_kib": peak_rss_kib(),
                "cpu_seconds": round(time.process_time(), 3),  # every thread, from the process's start
            }

        def populated(bundle: object) -> None:
            # The images table shows every image; once this timer runs the window answers input again.
            def answered() -> None:
                line = {"event": "populated", "populated_seconds": round(time.monotonic() - started, 3)}
                print(json.dumps({**line, **figures()}), flush=True)

            QTimer.singleShot(0, answered)

        def report(loaded: Loaded) -> None:
            def done() -> None:
                line = {
                    "event": "loaded",
                    **figures(),
                    "load_seconds": round(time.monotonic() - started, 3),
                    "window_size": [window.width(), window.height()],
                    "minimum_size": [window.minimumSizeHint().width(), window.minimumSizeHint().height()],
                    "available": [
                        window.screen().availableGeometry().width(),
                        window.screen().availableGeometry().height(),
                    ],
                }
                print(json.dumps(line), flush=True)
                window.close()
                app.quit()

            QTimer.singleShot(0, done)  # after the views have painted the new content once

        window.images_shown.connect(populated)
        window.bundle_loaded.connect(report)
        window.load_failed.connect(lambda message: (print(message, file=sys.stderr), app.exit(1)))
    window.open_bundle(args.path if args.path is not None else sample_bundle())
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
