"""SIGTERM outside ``trainer.fit``: a preemption during start-up or after training.

Inside fit, Lightning and ``GangSigterm`` turn SIGTERM into a checkpoint at the next
batch. Before fit (imports, data, the process group: 5-20 s) and after it (test,
registering the model) nothing listened, and Python's default action ended the process
without a record. Here a SIGTERM in those phases raises ``Preempted`` where the process
is, so the attempt is recorded as preempted and exits 143 like any other preemption:
nothing of this attempt's training is lost (before fit there is none; after fit
``last.ckpt`` already holds the final state, and the next attempt tests and registers).

One phase is not abandoned at once: registering the model, which a SIGTERM would leave
half-done in the registry. There the signal is held while the work finishes, within the
termination grace period the pod was given (``AEGIS_TERMINATION_GRACE_S``, Kubernetes'
default 30 s when unset) less a margin for writing the record; past that the work is
abandoned, so the process always exits before the kubelet's SIGKILL. ``outcome`` tells
the record which happened.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from types import FrameType
from typing import Any, Iterator, Optional

from aegis.core.rank_notes import grace_period_s

EXIT_MARGIN_S = 5.0  # kept back for writing the record and leaving the process group


class Preempted(BaseException):
    """SIGTERM outside fit. A BaseException, so that no ``except Exception`` swallows it."""


class SigtermOutsideFit:
    def __init__(self) -> None:
        self.phase = "start-up"
        self.received_at: Optional[float] = None  # monotonic time of the first SIGTERM
        self.outcome: Optional[str] = None  # for the record: what the SIGTERM did to its phase
        self._fitting = False
        self._previous: Any = None
        self._installed = False
        self._armed = False
        self._held = False
        self._critical = False
        self._alarm_previous: Any = None  # SIGALRM's handler before _hold_until_recorded

    def __enter__(self) -> "SigtermOutsideFit":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._installed:
            if self._alarm_previous is not None:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, self._alarm_previous)
            signal.signal(signal.SIGTERM, self._previous)

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.received_at is None:
            self.received_at = time.monotonic()
        if self._fitting:  # Lightning composes this handler into its own: fit handles it
            return
        if self._critical:  # work that must not be cut: finish it, unless the grace period runs out
            if not self._held:
                self._held = True
                self._arm_deadline()
            return
        if not self._armed:  # the record cannot say so yet: hold it until arm()
            self._held = True
            return
        self._stop()

    def _stop(self) -> None:
        self.outcome = f"abandoned {self.phase}"
        raise Preempted(f"SIGTERM during {self.phase}")

    def arm(self) -> None:
        """From now on a SIGTERM outside fit raises ``Preempted`` (at once, if one was held)."""
        self._armed = True
        if self._held:
            self._stop()

    @contextmanager
    def fitting(self) -> Iterator[None]:
        self.phase = "training"
        self._fitting = True
        try:
            yield
        except BaseException:
            # Fit raised (a rank that lost its peer, a bug, Lightning's SIGTERM stop): the attempt
            # now records why. torchrun SIGTERMs the whole gang as soon as one rank is gone, and
            # that signal must not cut the record short with a Preempted of its own ("SIGTERM
            # during the end of the run" over the rank's real cause, ~120 lines of traceback):
            # from here a SIGTERM is held, as while registering, within the grace period.
            self._fitting = False
            self._hold_until_recorded()
            raise
        self._fitting = False
        self.phase = "the end of the run (after training)"

    def _hold_until_recorded(self) -> None:
        if self._installed and hasattr(signal, "setitimer") and self._alarm_previous is None:
            self._alarm_previous = signal.signal(signal.SIGALRM, self._deadline)
        self._critical = True
        if self._held and self.received_at is not None:
            self._arm_deadline()

    def received_during_fit(self) -> None:
        """A SIGTERM that fit saw too late to stop at a batch: the phases after fit act on it."""
        self._held = True

    @contextmanager
    def phase_of(self, name: str) -> Iterator[None]:
        """A phase after fit that a SIGTERM abandons at once (the next attempt redoes it)."""
        self.phase = name
        if self._held:
            self._stop()
        yield

    @contextmanager
    def finishing(self, name: str) -> Iterator[None]:
        """A phase that a SIGTERM must not cut in half: it is held until the phase ends,
        unless the grace period runs out first, in which case the phase is abandoned."""
        self.phase = name
        if self._held:
            self._stop()
        use_timer = self._installed and hasattr(signal, "setitimer")
        previous_alarm: Any = None
        if use_timer:
            previous_alarm = signal.signal(signal.SIGALRM, self._deadline)
        self._critical = True
        try:
            yield
        finally:
            self._critical = False
            if use_timer:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous_alarm)
        if self._held:
            self.outcome = f"finished {name} within the grace period"

    def _deadline(self, signum: int, frame: Optional[FrameType]) -> None:
        self._critical = False
        self._stop()

    def _arm_deadline(self) -> None:
        if self.received_at is None or not self._installed or not hasattr(signal, "setitimer"):
            return  # no timer here: the phase finishes, however long it takes
        left = grace_period_s() - EXIT_MARGIN_S - (time.monotonic() - self.received_at)
        signal.setitimer(signal.ITIMER_REAL, max(0.01, left))
