"""``python -m aegis.data fetch|ls|rm``: what the prefetch init container runs."""

import sys

from aegis.data.cli import main

if __name__ == "__main__":
    sys.exit(main())
