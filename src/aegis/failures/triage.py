"""Which rank of a torchrun gang failed first, and why: one :class:`~aegis.failures.record.Failure`.

Three sources, read after the gang is down (no torch import):

- torchrun's own view of each failed rank (``aegis.launch.elastic``): exit code, signal,
  the rank's error file, and the order torchrun saw them in;
- each rank's own account (``aegis.failures.rank``): its exception, or that a
  collective timed out waiting for a peer;
- the ranks' notes (``aegis.launch.gang``): who noted its end, and who never did.

The rules, in order: a rank that raised for a reason of its own is the cause; else, when a
rank's collective timed out, the rank(s) that reported nothing of the kind stopped
responding; else a rank killed by a signal (named); else a rank that exited non-zero
without a word; else what the first rank said (it lost a peer). A rank that torchrun
stopped after another failed (it noted a preemption, or SIGTERM ended it) is a
consequence, not the cause.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Optional

from aegis.failures.record import LOG_TAIL_LINES, Failure
from aegis.failures.rank import failure_in_error_file, is_collective_timeout

CONSEQUENCE_STATUSES = ("preempted", "cancelled", "stopped")


def rank_log(run_dir: Optional[Path], rank: int) -> list[str]:
    """The last lines of a rank's log file in the run dir (``train.log``, ``train.rank1.log``)."""
    if run_dir is None:
        return []
    pattern = f"*.rank{rank}.log" if rank else "*.log"
    paths = [p for p in run_dir.glob(pattern) if rank or ".rank" not in p.name]
    if not paths:
        return []
    path = max(paths, key=lambda p: p.stat().st_mtime)
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - 16384))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-LOG_TAIL_LINES:]


def _is_peer(failure: Failure) -> bool:
    text = f"{failure.cause} {failure.message or ''}"
    return "another rank of the gang stopped" in text or is_collective_timeout(text)


def is_own(failure: Failure) -> bool:
    """A failure of the rank itself (an exception, a signal), not a lost peer or a timeout."""
    return (failure.exception is not None or failure.signal is not None) and not _is_peer(failure)


def _timed_out(failure: Failure) -> bool:
    return is_collective_timeout(f"{failure.cause} {failure.message or ''}")


def gang_failure(torchrun_failures: Iterable[dict[str, Any]], own: dict[int, Failure],
                 notes: Iterable[Any] = (), run_dir: Optional[Path] = None,
                 timeout_s: Optional[float] = None) -> Optional[Failure]:
    """The failure to report for one attempt of a gang, or None when nothing failed.

    ``torchrun_failures``: ``aegis.launch.elastic``'s records; ``own``: each rank's own
    Failure (its notes or error file); ``notes``: ``aegis.core.rank_notes.RankNote``s."""
    notes = {note.rank: note for note in notes}
    seen: dict[int, Failure] = {}
    order: list[int] = []
    for record in sorted(torchrun_failures, key=lambda r: r.get("order", 0)):
        rank, code, sig = int(record["rank"]), record.get("exit_code"), record.get("signal")
        mine = own.get(rank) or (failure_in_error_file(record.get("error_file_data")))
        note = notes.get(rank)
        if mine is not None:
            mine.rank = rank
            mine.exit_code = code if code is not None and code >= 0 else mine.exit_code
            # The signal is the cause only of a rank that left no account of its own: one that
            # raised, or lost its peer, and was then stopped by torchrun was stopped as a consequence.
            if not _is_peer(mine) and mine.exception is None:
                mine.signal = sig or mine.signal
        elif note is not None and note.exit_code is not None and note.status in CONSEQUENCE_STATUSES:
            continue  # torchrun stopped it after another rank failed: it checkpointed and left
        elif sig:
            mine = Failure(f"killed by {sig} (the OOM killer, kill -9, or a lost node: no record of its own)",
                           rank=rank, exit_code=None, signal=sig, log_tail=rank_log(run_dir, rank))
        else:
            mine = Failure(f"exited with code {code} without saying why (os._exit or a crash in native code)",
                           rank=rank, exit_code=code, log_tail=rank_log(run_dir, rank))
        seen[rank] = mine
        order.append(rank)
    for rank, failure in own.items():  # ranks torchrun did not list (it stopped them first)
        if rank not in seen:
            failure.rank = rank
            seen[rank] = failure
            order.append(rank)
    for rank, note in sorted(notes.items()):  # never noted its end, and torchrun was not asked (a pod's torchrun)
        if rank not in seen and note.exit_code is None:
            seen[rank] = Failure("ended without a record (killed, or os._exit)", rank=rank,
                                 log_tail=rank_log(run_dir, rank))
            order.append(rank)
    if not seen:
        return None
    ranked = [seen[r] for r in order]
    for failure in ranked:
        if failure.exception is not None and not _is_peer(failure):
            return failure
    waiting = [f for f in ranked if _timed_out(f)]
    if waiting:
        return _stopped_responding(waiting[0], {f.rank for f in waiting}, seen, notes, run_dir, timeout_s)
    stopped = [f for f in ranked if f.signal == "SIGTERM"]  # torchrun stops the others with SIGTERM
    for failure in ranked:
        if failure.signal and failure.signal != "SIGTERM":
            return failure
    for failure in ranked:
        if not _is_peer(failure) and failure.signal != "SIGTERM":
            return failure
    return (stopped or ranked)[0]


def _stopped_responding(waiting: Failure, timed_out: set[Optional[int]], seen: dict[int, Failure],
                        notes: dict[int, Any], run_dir: Optional[Path], timeout_s: Optional[float]) -> Failure:
    """A collective timed out: the ranks that did not time out themselves stopped responding."""
    known = set(seen) | set(notes)
    silent = sorted(r for r in known if r not in timed_out)
    after = f" after {timeout_s:g} s (strategy.timeout_s)" if timeout_s else ""
    saw = waiting.message or waiting.cause
    if not silent:
        return Failure(f"a collective timed out{after} on rank {waiting.rank}, and every rank that reported "
                       f"was waiting: {saw}", rank=waiting.rank, exception=waiting.exception,
                       message=waiting.message, log_tail=waiting.log_tail)
    first = silent[0]
    others = f" (and rank {', '.join(str(r) for r in silent[1:])})" if silent[1:] else ""
    killed = seen.get(first)
    return Failure(f"stopped responding{others}: rank {waiting.rank}'s collective timed out waiting for it{after} "
                   f"({saw})", rank=first, exception=waiting.exception, message=waiting.message,
                   signal=killed.signal if killed else None, log_tail=rank_log(run_dir, first))
