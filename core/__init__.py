"""regpack core engine: pure Python, no Qt."""
