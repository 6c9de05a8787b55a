"""regpack's desktop window: a thin PySide6 layer over core (models, chart, dialogs and a worker adapter)."""
