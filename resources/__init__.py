"""Files shipped with regpack: the app icon, style sheet, desktop entry and a tiny sample bundle."""
