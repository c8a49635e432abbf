"""What each rank of a gang leaves for its supervisor, and the names of the variables that say where.

A rank notes that it started and how it ended (``note_start``/``note_exit``) in the folder its
supervisor names in ``$AEGIS_GANG_NOTES``; the supervisor (``aegis.launch.gang``) reads the
notes back (``read_notes``) to turn torchrun's exit code into the gang's. The ranks run
training code, which imports no launcher, so the note format and the variables live here,
below both. A rank's account of a failure is ``aegis.failures.rank``. No torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

NOTES_ENV = "AEGIS_GANG_NOTES"
PREEMPTED_EXIT_CODE = 143  # 128 + SIGTERM: retryable under restartPolicy ExitCode
# The pod's terminationGracePeriodSeconds (launcher.termination_grace_period_s), so that
# a stop is planned to end before the kubelet's SIGKILL.
GRACE_ENV = "AEGIS_TERMINATION_GRACE_S"
DEFAULT_GRACE_S = 30.0  # Kubernetes' default, and what a run outside a pod assumes
# torchrun's wait for its ranks after passing a SIGTERM on, before it SIGKILLs them
SHUTDOWN_TIMEOUT_ENV = "TORCH_ELASTIC_SHUTDOWN_TIMEOUT"


def grace_period_s() -> float:
    try:
        return max(1.0, float(os.environ.get(GRACE_ENV, DEFAULT_GRACE_S)))
    except ValueError:
        return DEFAULT_GRACE_S


@dataclass(frozen=True)
class RankNote:
    rank: int
    exit_code: Optional[int]  # None: the rank started and never said how it ended
    status: str


def _write_note(rank: int, exit_code: Optional[int], status: str) -> None:
    folder = os.environ.get(NOTES_ENV)
    if not folder:
        return  # no supervisor asked
    path = Path(folder) / f"rank-{rank}.json"
    try:
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps({"rank": rank, "exit_code": exit_code, "status": status}))
        os.replace(temp, path)
    except OSError:
        pass  # the note only refines the gang's exit code; the run's own record is what counts


def note_start(rank: int) -> None:
    """This rank is running: if it never notes its exit, it died abruptly (os._exit, a
    crash, SIGKILL), which the supervisor must not mistake for a clean preemption."""
    _write_note(rank, None, "running")


def note_exit(rank: int, exit_code: int, status: str) -> None:
    """This rank's outcome, for its supervisor."""
    _write_note(rank, exit_code, status)


def read_notes(folder: Path) -> list[RankNote]:
    notes = []
    for path in folder.glob("rank-*.json"):
        try:
            data = json.loads(path.read_text())
            code = data["exit_code"]
            notes.append(RankNote(int(data["rank"]), None if code is None else int(code), str(data.get("status", ""))))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return sorted(notes, key=lambda n: n.rank)
