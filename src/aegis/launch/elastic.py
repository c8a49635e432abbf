"""``python -m aegis.launch.elastic ARGS``: torchrun (``torch.distributed.run``) that also
writes down, for its supervisor, how each rank of each attempt ended.

torchrun knows what its supervisor cannot see: which rank exited with which code or
signal, and the error file each rank left (``$TORCHELASTIC_ERROR_FILE``). It says so in
``ChildFailedError``, only in its own process, and only for the last attempt: a failure
that a restart (``--max-restarts``) recovered from is logged and forgotten. This module
runs torchrun's own ``main`` in-process with its agent's ``_monitor_workers`` observed
(private, see docs/internals.md), and writes every failed attempt to
``$AEGIS_GANG_NOTES/torchrun-attempt-<restart>.json``: for each failed rank, its exit
code, signal, error-file data and the order torchrun saw it in. The last failure's
``ChildFailedError`` table is not printed: the supervisor prints one paragraph instead.

Without ``$AEGIS_GANG_NOTES`` (nobody asked) it is exactly torchrun.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

NOTES_ENV = "AEGIS_GANG_NOTES"  # aegis.core.rank_notes.NOTES_ENV
# The executable this module stands in for: a gang supervisor given this command runs this
# module instead (``aegis.launch.gang``). A command name, not a launcher's: several launchers
# (torchrun's, a PyTorchJob's or TrainJob's pods) start their gangs with it.
EXECUTABLE = "torchrun"
ATTEMPT_FILE = "torchrun-attempt-{restart}.json"


def _failures(failures: dict[int, Any]) -> list[dict[str, Any]]:
    out = []
    for order, (rank, failure) in enumerate(failures.items()):  # torchrun's order: seen first, first
        out.append({
            "rank": int(rank),
            "local_rank": int(failure.local_rank),
            "exit_code": int(failure.exitcode),
            "signal": failure.signal_name() if failure.exitcode < 0 else None,
            "error_file_data": failure.error_file_data if failure.error_file != "<N/A>" else None,
            "timestamp": int(failure.timestamp),
            "order": order,
        })
    return out


def write_attempt(folder: Path, restart: int, failures: dict[int, Any], node_rank: Optional[int] = None) -> None:
    path = folder / ATTEMPT_FILE.format(restart=restart)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temp.write_text(json.dumps({"restart": restart, "node_rank": node_rank, "failures": _failures(failures)}))
        os.replace(temp, path)
    except (OSError, TypeError, ValueError):
        temp.unlink(missing_ok=True)


def read_attempts(folder: Path) -> dict[int, dict[str, Any]]:
    """Every recorded failed attempt, by torchrun's restart count."""
    found = {}
    for path in folder.glob("torchrun-attempt-*.json"):
        try:
            data = json.loads(path.read_text())
            found[int(data["restart"])] = data
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def _observe_agent(folder: Path) -> None:
    """Have torchrun's agent write each failed attempt to ``folder``."""
    import torch.distributed.launcher.api as launcher_api

    base = launcher_api.LocalElasticAgent

    class RecordingAgent(base):  # type: ignore[misc, valid-type]
        def _monitor_workers(self, worker_group: Any) -> Any:
            result = super()._monitor_workers(worker_group)
            if result.is_failed():
                restart = worker_group.spec.max_restarts - self._remaining_restarts
                write_attempt(folder, restart, result.failures, getattr(worker_group, "group_rank", None))
            return result

    launcher_api.LocalElasticAgent = RecordingAgent


def _quiet_stop_warnings() -> None:
    """torchrun's agent warns "Received 15 death signal, shutting down workers" and "Sending
    process N closing signal SIGTERM" on every stop; the supervisor's paragraph says how the
    gang ended (preempted, cancelled, which rank failed), so those two loggers keep errors only."""
    import logging

    for name in ("torch.distributed.elastic.agent.server.api", "torch.distributed.elastic.multiprocessing.api"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    folder = os.environ.get(NOTES_ENV)
    from torch.distributed import run as torchrun

    if not folder:
        torchrun.main(args)
        return 0
    # torchrun's own @record copies the first failed rank's error file here (else it logs that it has none)
    os.environ.setdefault("TORCHELASTIC_ERROR_FILE", str(Path(folder) / "torchrun-error.json"))
    try:
        _observe_agent(Path(folder))
    except Exception:  # torch moved its internals: plain torchrun, ranks' notes still count
        pass
    _quiet_stop_warnings()
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    try:
        torchrun.main(args)
    except ChildFailedError as exc:
        rank, first = exc.get_first_failure()
        print(f"torchrun: the gang failed (rank {rank} exited with code {first.exitcode} first); "
              "its report follows.", file=sys.stderr)
        return 1
    except SignalException as exc:
        # Told to stop (a preemption, aegis cancel): torchrun has passed the signal on and its
        # ranks checkpointed; its SignalException (25 lines of traceback) says nothing the
        # supervisor's paragraph does not. 128 + the signal, as the shell has it.
        return 128 + int(exc.sigval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
