"""``summary.json``: what a run dir's training did, attempt by attempt, on every exit path.

A run dir sees several attempts (resumes, preemptions, a crash and a re-run). Each is
listed under ``attempts``; the top level describes the run: the latest attempt, except
that an attempt which did not complete never replaces the record of one that did (a
re-run that fails after a completed run leaves ``"status": "completed"`` on top and its
failure in ``attempts``). An attempt is written as ``running`` when it starts, so one
that was killed outright (kill -9, OOM killer, a lost node) is found ``running`` by the
next attempt and recorded as ``killed``. Rank 0 alone writes. A ``summary.json`` that is not
a JSON object is moved into ``corrupt/`` with one warning, and the attempts that can still be
parsed out of it are kept.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
from pathlib import Path
from typing import Any, Optional

from aegis.redact import mask_tree
from aegis.core.files import read_json, write_json

log = logging.getLogger("aegis.training")

SUMMARY_FILE = "summary.json"
# Kept per attempt under "attempts"; the full record of the run is the top level.
_ATTEMPT_KEYS = ("attempt", "status", "started_at", "finished_at", "host", "pid", "slurm_job_id", "slurm_restart",
                 "resumed_from",
                 "resume_fallback", "epochs_completed", "global_step", "error", "cause", "failure")


class RunRecord:
    def __init__(self, run_dir: Path, rank_zero: bool) -> None:
        self.path = run_dir / SUMMARY_FILE
        self.rank_zero = rank_zero
        previous = _read_or_set_aside(self.path) if rank_zero else {}
        self.attempts: list[dict[str, Any]] = [dict(a) for a in previous.get("attempts") or []]
        if previous and not self.attempts:  # a record written before attempts were kept
            self.attempts = [_attempt_of(previous, 1)]
        if self.attempts and self.attempts[-1].get("status") == "running":
            self.attempts[-1].update(status="killed", cause="the process ended without a record "
                                     "(kill -9, the OOM killer, or a lost node)")
        self.completed: Optional[dict[str, Any]] = previous if previous.get("status") == "completed" else None
        self.current: dict[str, Any] = {
            "attempt": max([len(self.attempts), *(_number(a) for a in self.attempts)]) + 1,
            "started_at": time.time(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            **_scheduler_job(),
        }

    def update(self, **fields: Any) -> None:
        self.current.update(fields)

    def write(self, status: str, *, unless_explained: bool = False, **fields: Any) -> dict[str, Any]:
        """Record this attempt as ``status``; returns the attempt's full record.

        ``unless_explained``: this rank only lost its peer, so a cause another node's
        supervisor already recorded for this attempt (the rank that failed, on a pod of its
        own) stays: the file is then left as it is."""
        self.current.update(status=status, **fields)
        if status != "running":
            self.current["finished_at"] = time.time()
        attempts = self.attempts + [_attempt_of(self.current, self.current["attempt"])]
        top = self.current if status == "completed" or self.completed is None else self.completed
        if unless_explained and self.rank_zero and self._explained():
            log.info("%s already names this attempt's cause; this rank only lost its peer.", self.path)
            return dict(self.current)
        if self.rank_zero:
            try:  # an error's text can quote a URL with its password (an MLflow request that failed)
                write_json(self.path, mask_tree({**top, "attempts": attempts}))
            except OSError as exc:  # a full disk must not hide the failure being recorded
                log.error("Could not write %s: %s", self.path, exc)
        return dict(self.current)

    def _explained(self) -> bool:
        from aegis.failures.record import Failure
        from aegis.failures.triage import is_own

        on_disk = (read_json(self.path) or {}).get("attempts") or []
        mine = [a for a in on_disk if isinstance(a, dict) and a.get("attempt") == self.current["attempt"]]
        failure = mine[-1].get("failure") if mine else None
        try:
            return isinstance(failure, dict) and is_own(Failure.from_dict(failure))
        except (TypeError, ValueError):
            return False


def _number(attempt: dict[str, Any]) -> int:
    number = attempt.get("attempt")
    return number if isinstance(number, int) else 0


def _read_or_set_aside(path: Path) -> dict[str, Any]:
    """The record in ``path`` ({} when there is none yet). One that is not a JSON object is
    moved into ``corrupt/`` beside it (never overwritten) and what can be read of its attempts
    is kept, with one warning line."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        log.warning("%s cannot be read (%s); this attempt starts a new record beside it.", path,
                    exc.strerror or exc)
        return {}
    try:
        record = json.loads(text)
    except ValueError as exc:
        why = f"not valid JSON ({exc})"
    else:
        if isinstance(record, dict) and isinstance(record.get("attempts", []), list):
            return record
        why = "not a record of attempts"
    attempts = _attempts_in(text)
    corrupt = path.parent / "corrupt"
    try:
        corrupt.mkdir(exist_ok=True)
        kept = corrupt / f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        os.replace(path, kept)
    except OSError as exc:
        kept = None
        log.warning("%s is %s, and could not be moved aside (%s).", path, why, exc.strerror or exc)
    if kept is not None:
        log.warning("%s was %s: moved to %s, and %d earlier attempt(s) recovered from it.", path, why, kept,
                    len(attempts))
    return {"attempts": attempts}


def _attempts_in(text: str) -> list[dict[str, Any]]:
    """The attempt entries that can still be parsed out of a damaged ``summary.json``: each
    object that opens with its ``"attempt"`` number (written with sorted keys), by number."""
    decoder = json.JSONDecoder()
    found: dict[int, dict[str, Any]] = {}
    for match in re.finditer(r'\{\s*"attempt"\s*:', text):
        try:
            entry, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("attempt"), int) and "attempts" not in entry:
            found[entry["attempt"]] = {k: v for k, v in entry.items() if k in _ATTEMPT_KEYS}
    return [found[n] for n in sorted(found)]


def _scheduler_job() -> dict[str, Any]:
    """The SLURM job (and which requeue of it) this attempt ran as, when SLURM started it."""
    job_id = os.environ.get("SLURM_JOB_ID")
    if not job_id:
        return {}
    restart = os.environ.get("SLURM_RESTART_COUNT", "0")
    return {"slurm_job_id": job_id, "slurm_restart": int(restart) if restart.isdigit() else 0}


def _attempt_of(record: dict[str, Any], number: int) -> dict[str, Any]:
    entry = {key: record.get(key) for key in _ATTEMPT_KEYS if record.get(key) is not None}
    entry["attempt"] = number
    return entry
