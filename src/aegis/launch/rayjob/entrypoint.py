"""The RayJob's entrypoint: the local search's command line, as text that reaches the search
unchanged through KubeRay.

The entrypoint is a string, and it is parsed twice on its way: KubeRay pastes it into the
submitter's ``bash -lc`` line (``... ray job submit ... -- <entrypoint> ; fi ; ...``), where bash
splits it into words; ``ray job submit`` (Ray 2.60, POSIX) joins those words with ``shlex.join``
and Ray's job supervisor runs that string with ``shell=True``, which gives the same words back.
So each word is quoted once, for bash, as ``shlex.quote`` does: a search-space override
(``model.lr=tag(log,interval(1e-4,1e-1))``) is shell syntax, and reaches Hydra as written.
(Older Ray joined them with ``subprocess.list2cmdline``, which would need more quoting; the image
pins the Ray this project is tested with, and the container tier runs the real ``ray job
submit``.)
"""

from __future__ import annotations

import shlex


def entrypoint(argv: list[str]) -> str:
    return shlex.join(argv)
