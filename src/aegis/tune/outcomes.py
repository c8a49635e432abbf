"""How each trial of a search ended, told the same way in its run dir, the results and MLflow.

The worker records what it saw (``summary.json``), but some endings only the driver can
name: a trial whose worker was stopped because the search was interrupted looks exactly
like one ASHA stopped (both leave at a report with ``SystemExit``), and a trial that
crashed before its training started leaves no record at all. So after the search (or its
interruption) the driver completes each record: ``interrupted`` for trials the interrupt
cut short, ``failed`` with an ``aegis.failures.record.Failure`` for crashed ones (the exception's
type and message, clean of Ray's colour codes), and the log to read, ``train.log`` in the
trial's run dir under the sweep dir.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterable, Optional

from aegis.failures.record import Failure, clean
from aegis.core.files import read_json, write_json
from aegis.tune.results import TrialRecord
from aegis.tune.layout import POINTER_DIR

SUMMARY_FILE = "summary.json"
LOG_FILE = "train.log"
# How long the driver waits, at most, for the workers of trials an interrupt cut short to
# write their own last record (a worker Ray Tune could not stop leaves it "running").
WORKER_EXIT_WAIT_S = 15.0


def await_workers(run_dirs: Iterable[Path], timeout: float = WORKER_EXIT_WAIT_S) -> list[Path]:
    """Wait until no trial in ``run_dirs`` has a worker that may still write its record or
    end its MLflow run; return those that still had one at ``timeout``.

    Ray Tune stops a trial by telling its training thread to leave at its next report and
    returns without waiting for it, so the worker's own last word ("stopped", the epochs it
    completed) can land after the driver has written "interrupted", and replace it. A worker
    on this host is waited for until its process is gone (shutting down a local Ray ends
    them); one elsewhere until its record no longer says "running".
    """
    waiting = [d for d in run_dirs if _writing(d)]
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        time.sleep(0.1)
        waiting = [d for d in waiting if _writing(d)]
    return waiting


def _writing(run_dir: Path) -> bool:
    from aegis.core.lifecycle import process_alive

    summary = read_json(run_dir / SUMMARY_FILE) or {}
    pid, host = summary.get("pid"), summary.get("host")
    alive = process_alive(pid, host) if host and isinstance(pid, int) and pid != os.getpid() else None
    return summary.get("status") == "running" if alive is None else alive


def root_exception(error: Optional[BaseException]) -> Optional[BaseException]:
    """The exception the trial raised, out of Ray's wrappers (``RayTaskError(X)``, TuneError)."""
    seen = 0
    while error is not None and seen < 10:
        inner = getattr(error, "cause", None)
        if not isinstance(inner, BaseException) or inner is error:
            break
        error, seen = inner, seen + 1
    return error


def crash_failure(error: BaseException, summary: Optional[dict[str, Any]], log_path: Optional[Path]) -> Failure:
    """The failure record of a crashed trial: the trial's own (``summary.json``: ``failure``,
    else its ``cause``/``error``) where it wrote one, else built from the exception Ray caught."""
    summary = summary or {}
    if isinstance(summary.get("failure"), dict):
        return Failure.from_dict(summary["failure"])
    inner = root_exception(error)
    exception = type(inner).__name__ if inner is not None else None
    message = clean(str(inner) if inner is not None else str(error)) or ""
    recorded = summary.get("error")
    if recorded and ":" in recorded and summary.get("status") == "failed":  # "Type: message", the trial's own
        exception, message = recorded.split(":", 1)[0].strip(), clean(recorded.split(":", 1)[1]) or message
    first_line = next((line for line in message.splitlines() if line.strip()), "")
    cause = summary.get("cause") if summary.get("status") == "failed" else None
    cause = cause or (f"{exception}: {first_line}" if first_line else exception or "the trial crashed")
    tail: list[str] = []
    if log_path is not None and log_path.is_file():
        tail = log_path.read_text(errors="replace").splitlines()[-20:]
    return Failure(cause=cause, exception=exception, message=message, log_tail=tail)


def trial_outcome(record: TrialRecord, error: Optional[BaseException], *, done: bool, interrupted: bool) -> None:
    """Fill ``record``'s status, epochs, log and (crashed) failure; complete its run dir's
    ``summary.json`` where the worker could not."""
    run_dir = record.run_dir
    summary = (read_json(run_dir / SUMMARY_FILE) if run_dir else None) or {}
    log_path = run_dir / LOG_FILE if run_dir else None
    record.log = log_path
    record.epochs = summary.get("epochs_completed")
    if record.epochs is None and record.history:
        record.epochs = max(epoch for epoch, _ in record.history)
    status = summary.get("status") or "running"
    changes: dict[str, Any] = {}
    if error is not None:
        failure = crash_failure(error, summary, log_path)
        record.failure = failure.as_dict()
        record.error = failure.cause
        status = "failed"
        if summary.get("status") != "failed" or "failure" not in summary:
            changes = {"status": "failed", "failure": failure.as_dict(), "cause": failure.cause}
    elif interrupted and status in ("stopped", "running", "killed"):
        status = "interrupted"
        changes = {"status": "interrupted", "cause": "the search was interrupted; resuming it continues this trial"}
        if summary.get("epochs_completed") is None:  # its worker was ended before it could write it
            changes["epochs_completed"] = record.epochs or 0
    record.status = status
    if changes and run_dir is not None:
        _update_summary(run_dir, summary, changes)
    if run_dir is not None and status in ("completed", "stopped", "failed"):
        # An ended trial is never restored: the weights its Ray checkpoints pointed to go
        # (hard links to earlier last.ckpt files, each holding a checkpoint's disk space).
        for link in (run_dir / POINTER_DIR).glob("reported-*.ckpt"):
            link.unlink(missing_ok=True)


def _update_summary(run_dir: Path, summary: dict[str, Any], changes: dict[str, Any]) -> None:
    """Apply ``changes`` to the record's top level and its latest attempt (a trial that
    never started training gets a record of its own)."""
    if not run_dir.is_dir():
        return
    updated = {**summary, **changes}
    attempts = [dict(a) for a in summary.get("attempts") or []]
    if attempts:
        attempts[-1].update({k: v for k, v in changes.items() if k in ("status", "cause")})
    else:
        attempts = [{"attempt": 1, **{k: v for k, v in changes.items() if k in ("status", "cause")}}]
    updated["attempts"] = attempts
    updated.setdefault("run_dir", str(run_dir))
    write_json(run_dir / SUMMARY_FILE, updated)
