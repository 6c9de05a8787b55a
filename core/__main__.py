"""`python -m regpack`: the regpack command line."""

from __future__ import annotations

import sys

from regpack.cli import main

if __name__ == "__main__":
    sys.exit(main())
