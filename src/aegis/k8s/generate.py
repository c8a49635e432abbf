"""``python -m aegis.k8s.generate``: the old name of ``python -m aegis.generate``, kept for scripts.

Generating the checked-in manifests composes and validates configs and asks every launcher
to render, so it sits at the top with the CLI (``aegis.generate``); this entry point only
forwards to it. The import contract in pyproject.toml names this one upward import.
"""

import sys

from aegis.generate import main

if __name__ == "__main__":
    sys.exit(main())
