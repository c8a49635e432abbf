"""A rank's own account of how it failed, left where its launcher looks.

Rank 0 alone writes ``summary.json`` while the gang runs, so a rank that raises cannot
put its exception there itself. It leaves it in two places instead:

- torchelastic's error file (``$TORCHELASTIC_ERROR_FILE``, set by torchrun for each
  rank; the format of ``torch.distributed.elastic``'s ``ErrorHandler``, which ``@record``
  writes), so torchrun's own failure report shows the exception rather than "To enable
  traceback see ...", with Aegis's :class:`~aegis.failures.record.Failure` under ``extraInfo``;
- the gang supervisor's notes folder (``note_failure`` below), which also
  covers what torchrun does not list (a rank that timed out in a collective while the
  rank that stopped responding was still alive); ``note_user_error`` does the same for a
  rank that stops on a config error before it trains.

No torch import here: the error file is plain JSON in torch's documented layout.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path
from typing import Optional, Sequence

from aegis.core.rank_notes import NOTES_ENV
from aegis.failures.record import LOG_TAIL_LINES, Failure

ERROR_FILE_ENV = "TORCHELASTIC_ERROR_FILE"
# What a rank's exception says when a collective waited for a peer that never came
# (gloo, then NCCL's watchdog): that peer stopped responding, this rank did not.
TIMEOUT_WORDS = ("Timed out waiting", "Watchdog caught collective operation timeout", "timed out after",
                 "wait timeout after")  # the last: the store, while the gang forms


def is_collective_timeout(text: Optional[str]) -> bool:
    return bool(text) and any(word in str(text) for word in TIMEOUT_WORDS)


def traceback_tail(exc: BaseException, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of ``exc``'s traceback: where it was raised and what it said."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    kept = [line for line in text.rstrip().splitlines() if line.strip().strip("^~")]  # not the caret markers
    return kept[-lines:]


def failure_of(exc: BaseException, cause: str, rank: Optional[int], exit_code: Optional[int]) -> Failure:
    """The :class:`Failure` this rank saw: its exception, the cause sentence, the traceback's end."""
    message = str(exc).strip() or None
    if not isinstance(exc, SystemExit) and type(exc).__name__ not in cause:
        cause = f"{type(exc).__name__}: {cause}"  # "InjectedFault: boom", not a bare "boom"
    if isinstance(exc, SystemExit):  # where the code called exit: "exited with code 3" alone says nothing
        frames = traceback.extract_tb(exc.__traceback__)
        if frames:
            last = frames[-1]
            cause = f"{cause}: sys.exit({exc.code!r}) in {last.name} ({last.filename}:{last.lineno})"
        return Failure(cause, rank=rank, exit_code=exit_code, log_tail=traceback_tail(exc))
    return Failure(cause, rank=rank, exception=type(exc).__name__, message=message, exit_code=exit_code,
                   log_tail=traceback_tail(exc))


def write_error_file(exc: BaseException, failure: Failure) -> None:
    """torchelastic's error file for this rank, when torchrun asked for one."""
    path = os.environ.get(ERROR_FILE_ENV)
    if not path:
        return
    data = {"message": {
        "message": f"{type(exc).__name__}: {exc}",
        "extraInfo": {
            "py_callstack": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
            "timestamp": str(int(time.time())),
            "aegis_failure": failure.as_dict(),
        },
    }}
    try:
        with open(path, "w") as out:
            json.dump(data, out)
    except OSError:
        pass  # the notes folder and the rank's log still say it


def failure_in_error_file(data: object) -> Optional[Failure]:
    """The :class:`Failure` in an error file's data (ours), or one made of torch's fields."""
    message = data.get("message") if isinstance(data, dict) else None
    if not isinstance(message, dict):
        return None
    extra = message.get("extraInfo") or {}
    if isinstance(extra.get("aegis_failure"), dict):
        return Failure.from_dict(extra["aegis_failure"])
    text = str(message.get("message") or "")
    kind, _, said = text.partition(": ")
    stack = str(extra.get("py_callstack") or "").rstrip().splitlines()
    return Failure(said or kind, exception=kind if said else None, message=said or None, log_tail=stack)


def _restart() -> int:
    """torchrun's restart count of this attempt (0: the first)."""
    try:
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)
    except ValueError:
        return 0


def note_failure(rank: int, failure: Failure) -> None:
    """This rank's own account of its failure (an ``aegis.failures.record.Failure``), per attempt."""
    folder = os.environ.get(NOTES_ENV)
    if not folder:
        return
    path = Path(folder) / f"failure-{_restart()}-rank-{rank}.json"
    try:
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps(failure.as_dict()))
        os.replace(temp, path)
    except OSError:
        pass


def note_user_error(exc: BaseException, lines: Sequence[str]) -> None:
    """A rank that stops on a user error (its config, before it trains) leaves its ``Error:``
    lines as its own account, so the gang's report names them rather than an exit without a
    word. Outside a gang (no ``RANK``, nobody listening) it does nothing."""
    rank = os.environ.get("RANK", "")
    said = [line.removeprefix("Error: ").strip() for line in lines if line.strip()]
    if not rank.isdigit() or not said or not (os.environ.get(NOTES_ENV) or os.environ.get(ERROR_FILE_ENV)):
        return
    more = f" (and {len(said) - 1} more problems)" if len(said) > 1 else ""
    failure = Failure(said[0] + more, rank=int(rank), exception=type(exc).__name__, message="\n".join(said),
                      exit_code=1)
    note_failure(int(rank), failure)
    write_error_file(exc, failure)


def read_failures(folder: Path) -> dict[int, dict[int, Failure]]:
    """The ranks' own failures, by torchrun restart count, then rank."""
    found: dict[int, dict[int, Failure]] = {}
    for path in folder.glob("failure-*-rank-*.json"):
        try:
            _, restart, _, rank = path.stem.split("-")
            found.setdefault(int(restart), {})[int(rank)] = Failure.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
    return found
