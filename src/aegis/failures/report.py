"""Hand a :class:`~aegis.failures.record.Failure` to the places a user looks: the terminal (one
paragraph), the run dir's ``summary.json`` (status ``failed`` and ``"failure"``) and the
tracked MLflow run (``aegis.failures.record.*`` tags).

Whoever knows the failure delivers it: a run in this process for its own exception; the
gang's supervisor for a rank that was killed or stopped responding, after the gang is down
(no rank is left to write, so the supervisor's write cannot race rank 0's). No torch
import; MLflow is imported only when there is a run to tag.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Optional, TextIO

from aegis.failures.record import Failure

log = logging.getLogger("aegis")

SUMMARY_FILE = "summary.json"  # aegis.training.record.SUMMARY_FILE (which imports nothing heavy, but owns it)
TRACKING_FILE = "tracking.json"  # aegis.training.tracking.TRACKING_FILE (that module imports lightning)


def print_paragraph(failure: Failure, stream: Optional[TextIO] = None) -> None:
    print(failure.paragraph(), file=stream or sys.stderr, flush=True)


def merge_into_summary(run_dir: Path, failure: Optional[Failure], first_attempt: Optional[int] = None,
                       restarts: Optional[dict[int, Failure]] = None) -> bool:
    """Record ``failure`` as the end of the run dir's latest attempt (``None``: the gang
    finished after its restarts) and each restart's cause in its attempt; True if written.

    ``restarts`` maps torchrun's restart count (0: the first attempt of this launch) to the
    failure that ended it; ``first_attempt`` is the summary's attempt number of restart 0.
    A completed record on top stays on top (``aegis.training.record``): the failure then
    lands in its attempt only."""
    from aegis.core.files import read_json, write_json

    path = run_dir / SUMMARY_FILE
    record = read_json(path)
    if record is None:
        return False
    attempts: list[dict[str, Any]] = record.get("attempts") or []
    for restart, why in sorted((restarts or {}).items()):
        number = (first_attempt or 1) + restart
        for attempt in attempts:
            if attempt.get("attempt") == number:
                attempt.update(cause=why.cause, failure=why.as_dict(), restarted=True,
                               status="killed" if why.signal else "failed")
    if restarts:
        record["restarts"] = [{"attempt": (first_attempt or 1) + k, "cause": f.cause, "rank": f.rank}
                              for k, f in sorted(restarts.items())]
    if failure is not None:
        # What rank 0 wrote of its own end (a lost peer: its error, "retryable") is not the gang's.
        ended = {"status": "failed", "cause": failure.cause, "failure": failure.as_dict(), "error": _error_of(failure)}
        if attempts:
            attempts[-1].update(ended)
        if record.get("status") != "completed" or not attempts:
            record.update(ended)
            record.pop("retryable", None)
    record["attempts"] = attempts
    try:
        write_json(path, record)
    except OSError as exc:
        log.error("Could not write %s: %s", path, exc)
        return False
    return True


def _error_of(failure: Failure) -> str:
    """The ``error`` field of a record ("Type: message", as a rank writes its own)."""
    if failure.exception:
        return f"{failure.exception}: {failure.message or ''}".rstrip(": ")[:2000]
    return failure.cause[:2000]


def _tracking_uri(recorded: Optional[str]) -> Optional[str]:
    """The URI the run logged to: tracking.json keeps it masked when it held a password,
    in which case it came from $MLFLOW_TRACKING_URI (a config value with one is refused)."""
    from aegis.redact import mask_credentials

    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env and mask_credentials(env) == recorded:
        return env
    return recorded


def tag_run(run_dir: Path, failure: Failure) -> bool:
    """Set ``failure.tags()`` on the MLflow run the run dir logged to; True if tagged."""
    from aegis.core.files import read_json

    record = read_json(run_dir / TRACKING_FILE) or {}
    run_id, uri = record.get("run_id"), _tracking_uri(record.get("tracking_uri"))
    if not run_id or not uri:
        return False
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        for key, value in failure.tags().items():
            client.set_tag(run_id, key, value)
        client.set_terminated(run_id, status="FAILED")
    except Exception as exc:  # the terminal and summary.json still say it
        log.warning("Could not tag MLflow run %s with its failure: %s", run_id, str(exc).splitlines()[0][:300])
        return False
    return True


def report(failure: Optional[Failure], run_dir: Optional[Path], *, summary: bool = True,
           first_attempt: Optional[int] = None, restarts: Optional[dict[int, Failure]] = None) -> None:
    """All three for ``failure`` (paragraph; summary.json and MLflow tags unless ``summary``
    is false: another node's supervisor records it); the causes of the restarts in
    summary.json, and one line each."""
    for restart, why in sorted((restarts or {}).items()):
        print(f"Restart {restart + 1}: {why.where()}: {why.cause}", file=sys.stderr, flush=True)
    if failure is not None:
        print_paragraph(failure)
    if run_dir is None or not run_dir.is_dir():
        return
    if not summary:
        return
    if failure is not None or restarts:
        merge_into_summary(run_dir, failure, first_attempt, restarts)
    if failure is not None:
        tag_run(run_dir, failure)
