"""`python -m regpack.gui`: the desktop window."""

from __future__ import annotations

import sys

from regpack.gui.app import main

if __name__ == "__main__":
    sys.exit(main())
