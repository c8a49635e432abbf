"""One record of why a run failed, the same under every launcher.

"rank 1 exited with code 1" tells a user nothing they can act on; what they need is which
rank (or pod) failed first, what it raised or what killed it, and the last lines it logged.
Every launcher that can find out builds a :class:`Failure` (torchrun from the ranks' error
files, Kubernetes from pod statuses and events, a search from its trials) and hands it to the
three places a user looks: the terminal (:meth:`Failure.paragraph`), ``summary.json``
(``"failure"``: :meth:`Failure.as_dict`) and the tracked run (:meth:`Failure.tags`).

Plain data: no torch, no kubernetes client. Text is cleaned of terminal colour codes and
masked of credentials on the way in, so no writer has to remember.
"""

from __future__ import annotations

import re
import signal as _signal
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Optional

LOG_TAIL_LINES = 20  # enough for a traceback's end, short enough for a terminal paragraph
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
TAG_PREFIX = "aegis.failures.record."


def clean(text: Optional[str], limit: int = 2000) -> Optional[str]:
    """``text`` without colour codes or credentials, at most ``limit`` characters."""
    if text is None:
        return None
    from aegis.redact import mask_credentials

    out = mask_credentials(_ANSI.sub("", str(text))).strip()
    return out if len(out) <= limit else out[: limit - 1] + "…"


def signal_name(number: Optional[int]) -> Optional[str]:
    """``SIGKILL`` for 9; None for a number that is no signal."""
    if number is None or number <= 0:
        return None
    try:
        return _signal.Signals(number).name
    except ValueError:
        return None


def signal_of_exit(code: Optional[int]) -> Optional[str]:
    """The signal an exit status says killed the process: -9 (Python's subprocess) or 137
    (128 + 9, a shell's or a container's), else None."""
    if code is None:
        return None
    if code < 0:
        return signal_name(-code)
    if 128 < code < 128 + 65:
        return signal_name(code - 128)
    return None


@dataclass
class Failure:
    """Why a run failed. ``cause`` is the one sentence; the rest are what it was built from."""

    cause: str
    rank: Optional[int] = None  # global rank, where the failing process had one
    pod: Optional[str] = None
    exception: Optional[str] = None  # the exception's type name
    message: Optional[str] = None  # its message (first 2000 characters)
    exit_code: Optional[int] = None
    signal: Optional[str] = None  # "SIGKILL"
    log_tail: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cause = clean(self.cause, 500) or "unknown cause"
        self.message = clean(self.message)
        self.log_tail = [clean(line, 500) or "" for line in self.log_tail][-LOG_TAIL_LINES:]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Failure":
        known = {k: data.get(k) for k in ("cause", "rank", "pod", "exception", "message", "exit_code", "signal")}
        return cls(**known, log_tail=list(data.get("log_tail") or []))  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def where(self) -> str:
        """``rank 1 (pod x-worker-0)``, ``pod x``, or ``the run``."""
        parts = []
        if self.rank is not None:
            parts.append(f"rank {self.rank}")
        if self.pod:
            parts.append(f"pod {self.pod}" if not parts else f"(pod {self.pod})")
        return " ".join(parts) or "the run"

    def paragraph(self, tail_lines: int = 8) -> str:
        """The few lines a terminal shows: where, what, how it ended, the log's end."""
        head = f"Run failed: {self.where()}: {self.cause}"
        head = head if head.endswith((".", "!", "?")) else head + "."
        ended = []
        if self.exit_code is not None:
            ended.append(f"exit code {self.exit_code}")
        if self.signal:
            ended.append(f"killed by {self.signal}")
        lines = [head + (f" ({', '.join(ended)})" if ended else "")]
        tail = [line for line in self.log_tail if line.strip()][-tail_lines:]
        if tail:
            lines.append(f"Last lines of {self.where()}'s log:")
            lines.extend(f"  | {line}" for line in tail)
        return "\n".join(lines)

    def tags(self) -> dict[str, str]:
        """MLflow tags (values are strings; empty fields are left out)."""
        out = {}
        for key, value in self.as_dict().items():
            if key == "log_tail" or value is None:
                continue
            out[TAG_PREFIX + key] = str(value)[:5000]
        return out


def first(failures: Iterable[Optional[Failure]]) -> Optional[Failure]:
    """The failure to report of several (ranks, pods): the first that raised or was killed
    for a reason of its own, before those that only lost a peer."""
    found = [f for f in failures if f is not None]
    own = [f for f in found if f.exception is not None or f.signal is not None]
    return (own or found or [None])[0]
