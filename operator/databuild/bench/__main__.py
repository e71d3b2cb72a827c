"""``python -m databuild.bench``: the operator against a zero-overhead baseline."""

from __future__ import annotations

import sys

from databuild.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
