"""regpack core engine: pure Python, no Qt."""

__version__ = "0.2.0"
