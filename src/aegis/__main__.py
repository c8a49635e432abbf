"""``python -m aegis ...``: the same as the ``aegis`` console script."""

import sys

from aegis.commands import main

if __name__ == "__main__":
    sys.exit(main())
