"""Colours from the palette: light and dark desktops alike, and a Fusion dark/light theme on request.

Nothing here hard-codes a background for text drawn in the palette's own text colour: status colours are
picked for the palette in use (pale tints on a light base, deep ones on a dark base) and come with their
own text colour, so a row never ends up white on white or black on black.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QWidget

Role = QPalette.ColorRole


class Theme(StrEnum):
    SYSTEM = "system"  # whatever the desktop gives
    LIGHT = "light"
    DARK = "dark"


def luminance(color: QColor) -> float:
    """Relative luminance (WCAG 2)."""

    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(color.redF()) + 0.7152 * channel(color.greenF()) + 0.0722 * channel(color.blueF())


def contrast(a: QColor, b: QColor) -> float:
    """WCAG contrast ratio, 1 (none) to 21 (black on white); body text wants 4.5 or more."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def blend(a: QColor, b: QColor, amount: float) -> QColor:
    """``a`` moved ``amount`` (0..1) of the way towards ``b``."""
    return QColor.fromRgbF(
        a.redF() + (b.redF() - a.redF()) * amount,
        a.greenF() + (b.greenF() - a.greenF()) * amount,
        a.blueF() + (b.blueF() - a.blueF()) * amount,
    )


def is_dark(palette: QPalette) -> bool:
    return luminance(palette.color(Role.Base)) < 0.2


def fix_alternate_base(palette: QPalette) -> QPalette:
    """Alternate rows a shade off the base, towards the text colour: always readable, always visible."""
    base, text, alternate = palette.color(Role.Base), palette.color(Role.Text), palette.color(Role.AlternateBase)
    if alternate == base or contrast(alternate, text) < 4.5 or contrast(alternate, base) > 1.6:
        palette.setColor(Role.AlternateBase, blend(base, text, 0.07))
    return palette


def dark_palette() -> QPalette:
    p = QPalette()
    window, base, text = QColor(45, 45, 48), QColor(30, 30, 32), QColor(230, 230, 230)
    for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
        p.setColor(group, Role.Window, window)
        p.setColor(group, Role.WindowText, text)
        p.setColor(group, Role.Base, base)
        p.setColor(group, Role.AlternateBase, blend(base, text, 0.07))
        p.setColor(group, Role.Text, text)
        p.setColor(group, Role.Button, window)
        p.setColor(group, Role.ButtonText, text)
        p.setColor(group, Role.ToolTipBase, QColor(60, 60, 64))
        p.setColor(group, Role.ToolTipText, text)
        p.setColor(group, Role.PlaceholderText, QColor(140, 140, 140))
        p.setColor(group, Role.Highlight, QColor(47, 111, 179))
        p.setColor(group, Role.HighlightedText, QColor(255, 255, 255))
        p.setColor(group, Role.Link, QColor(110, 170, 240))
        p.setColor(group, Role.BrightText, QColor(255, 90, 90))
        p.setColor(group, Role.Light, QColor(70, 70, 74))
        p.setColor(group, Role.Midlight, QColor(58, 58, 62))
        p.setColor(group, Role.Mid, QColor(40, 40, 42))
        p.setColor(group, Role.Dark, QColor(20, 20, 22))
        p.setColor(group, Role.Shadow, QColor(0, 0, 0))
    disabled = QPalette.ColorGroup.Disabled
    for role in (Role.WindowText, Role.Text, Role.ButtonText):
        p.setColor(disabled, role, QColor(120, 120, 120))
    p.setColor(disabled, Role.Base, window)
    return p


def apply_theme(app: QApplication, theme: Theme) -> None:
    """SYSTEM keeps the desktop's palette (only the alternate row colour is made sure of); LIGHT and DARK
    switch to the Fusion style with its standard light palette or a dark one."""
    if theme is Theme.SYSTEM:
        palette = app.palette()
    else:
        app.setStyle("Fusion")
        palette = dark_palette() if theme is Theme.DARK else app.style().standardPalette()
    app.setPalette(fix_alternate_base(palette))


@dataclass(frozen=True, slots=True)
class StatusColors:
    error_background: QColor
    error_text: QColor
    warning_background: QColor
    warning_text: QColor
    ok_text: QColor
    marked_background: QColor  # rows of the selected image in the layers tree; drawn with the palette's text


def status_colors(palette: QPalette | None = None) -> StatusColors:
    palette = palette if palette is not None else QGuiApplication.palette()
    marked = blend(palette.color(Role.Base), palette.color(Role.Highlight), 0.25)
    if is_dark(palette):
        return StatusColors(
            QColor("#5c1f1a"), QColor("#ffd7d2"), QColor("#4d3d10"), QColor("#fff0c2"), QColor("#7fd88f"), marked
        )
    return StatusColors(
        QColor("#f8d0cc"), QColor("#8c1d13"), QColor("#fcefc7"), QColor("#4d3800"), QColor("#1b7f3b"), marked
    )


def set_text_color(widget: QWidget, color: QColor) -> None:
    palette = widget.palette()
    palette.setColor(Role.WindowText, color)
    widget.setPalette(palette)
