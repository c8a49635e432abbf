"""SIGTERM outside ``trainer.fit``: a preemption during start-up or after training.

Inside fit, Lightning and ``GangSigterm`` turn SIGTERM into a checkpoint at the next
batch. Before fit (imports, data, the process group: 5-20 s) and after it (test,
registering the model) nothing listened, and Python's default action ended the process
without a record. Here a SIGTERM in those phases raises ``Preempted`` where the process
is, so the attempt is recorded as preempted and exits 143 like any other preemption:
nothing of this attempt's training is lost (before fit there is none; after fit
``last.ckpt`` already holds the final state).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from types import FrameType
from typing import Any, Iterator, Optional


class Preempted(BaseException):
    """SIGTERM outside fit. A BaseException, so that no ``except Exception`` swallows it."""


class SigtermOutsideFit:
    def __init__(self) -> None:
        self.phase = "start-up"
        self._fitting = False
        self._previous: Any = None
        self._installed = False
        self._armed = False
        self._held = False

    def __enter__(self) -> "SigtermOutsideFit":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous)

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if self._fitting:  # Lightning composes this handler into its own: fit handles it
            return
        if not self._armed:  # the record cannot say so yet: hold it until arm()
            self._held = True
            return
        raise Preempted(f"SIGTERM during {self.phase}")

    def arm(self) -> None:
        """From now on a SIGTERM outside fit raises ``Preempted`` (at once, if one was held)."""
        self._armed = True
        if self._held:
            raise Preempted(f"SIGTERM during {self.phase}")

    @contextmanager
    def fitting(self) -> Iterator[None]:
        self._fitting = True
        try:
            yield
        finally:
            self._fitting = False
            self.phase = "the end of the run (after training)"
