"""The RayJob's entrypoint: the local search's command line, as text that reaches the search
unchanged through KubeRay.

The entrypoint is a string, and it is parsed three times on its way: KubeRay pastes it into the
submitter's ``bash -lc`` line (``... ray job submit ... -- <entrypoint> ; fi ; ...``), ``ray job
submit`` joins the words bash made with ``subprocess.list2cmdline``, and Ray's job supervisor
runs that string with ``shell=True``. A search-space override (``model.lr=tag(log,interval(1e-4,
1e-1))``) is shell syntax to both shells, so a word that needs quoting is quoted twice: bash
strips the outer quotes, ``list2cmdline`` passes a word without whitespace or ``"``/``\\`` as it
is, and the supervisor's shell strips the inner ones. A word with whitespace, a quote or a
backslash cannot be carried that way (``list2cmdline`` would re-quote it for Windows), which
``carried`` says before anything is rendered.
"""

from __future__ import annotations

import re
import shlex
from typing import Optional

# Characters list2cmdline (or the second shell) would change inside an already-quoted word.
_NOT_CARRIED = re.compile(r"[\s'\"\\]")
_PLAIN = re.compile(r"[\w./:@%+=,-]+")
_DOUBLE_QUOTE_SPECIAL = re.compile(r"[$`!]")


def carried(word: str) -> Optional[str]:
    """Why ``word`` cannot travel in a RayJob entrypoint, or None when it can."""
    match = _NOT_CARRIED.search(word)
    if match is None:
        return None
    what = {"'": "a single quote", '"': "a double quote", "\\": "a backslash"}.get(match.group(), "whitespace")
    return f"it contains {what}"


def quote(word: str) -> str:
    """``word`` as the entrypoint writes it: bare when no shell reads it differently, else
    quoted for both shells."""
    if _PLAIN.fullmatch(word):
        return word
    inner = f"'{word}'"  # for the supervisor's shell (``carried`` words have no single quote)
    if not _DOUBLE_QUOTE_SPECIAL.search(inner):
        return f'"{inner}"'  # for bash: "'model.lr=tag(log,interval(1e-4,1e-1))'"
    return shlex.quote(inner)


def entrypoint(argv: list[str]) -> str:
    return " ".join(quote(word) for word in argv)
