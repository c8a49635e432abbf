"""Keep Python's cyclic garbage collector out of the training start-up.

Importing torch and Lightning and building a run creates ~800k long-lived objects
(modules, classes, functions). Each allocation burst triggers the collector, and its
full collections walk everything created so far: ~0.6-0.8 s of a 3-4 s start here.
So the first start-up in a process runs with the collector paused, and when training
starts everything alive is moved to the permanent generation (``gc.freeze()``) instead
of being walked once more by a ~0.6 s full collection in the middle of the first
epochs. Later full collections skip those objects too. The price: the start-up's own
cyclic garbage (~20-50k objects, a few MB, measured) is never collected. A second run
in the same process (Ray Tune trials share workers) imports nothing new and would
freeze the previous run's garbage, so it runs with the collector as usual.
"""

from __future__ import annotations

import gc
from types import TracebackType
from typing import Optional

_done_in_this_process = False


class StartupGCPause:
    """Collector off from ``__enter__`` until :meth:`end` (or the context's exit)."""

    def __init__(self) -> None:
        self._paused = False

    def __enter__(self) -> "StartupGCPause":
        if not _done_in_this_process and gc.isenabled():
            gc.disable()
            self._paused = True
        return self

    def end(self) -> None:
        """Freeze what start-up created and turn the collector back on; idempotent."""
        global _done_in_this_process
        if self._paused:
            gc.freeze()
            gc.enable()
            self._paused = False
            _done_in_this_process = True

    def __exit__(self, exc_type: Optional[type], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.end()
