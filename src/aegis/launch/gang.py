"""The exit code of a gang of ranks, as what restarts it needs to read it.

torchrun exits 1 whenever one of its ranks exits non-zero, and also when it is itself
told to stop, however cleanly its ranks checkpointed. A scheduler that restarts on
signal-like codes (Kubeflow's ``restartPolicy: ExitCode`` retries 128-255 and fails the
job on 1-127) would then treat every preemption as a bug. So each rank leaves a note of
its own outcome (``aegis.core.rank_notes.note_exit``) in a folder its supervisor gave it, and the supervisor
turns torchrun's 1 back into what the ranks said (``gang_exit_code``):

- a rank that failed for a reason of its own (a bug, bad data: 1-127) fails the gang;
- otherwise, when ranks were preempted (143), or lost a peer, or the supervisor itself
  was told to stop, the gang exits 143: retryable, and the next attempt resumes.

``python -m aegis.launch.gang CMD...`` is that supervisor inside a pod: the image's
init (tini) signals it, it forwards SIGTERM/SIGINT to ``CMD`` (torchrun) and exits with
the gang's code. The local torchrun launcher uses the same rule. No torch import.

When the gang failed (or a restart recovered from a failure), the supervisor also says
which rank and why (``aegis.failures.triage``): torchrun runs as ``aegis.launch.elastic``,
which records each failed attempt, each rank leaves its own account
(``aegis.failures.rank.note_failure``),
and the one :class:`~aegis.failures.record.Failure` goes to the terminal, the run dir's
``summary.json`` and the MLflow run (``aegis.failures.report``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Optional, Sequence

from aegis.core.rank_notes import NOTES_ENV, PREEMPTED_EXIT_CODE, SHUTDOWN_TIMEOUT_ENV, RankNote, grace_period_s, read_notes
from aegis.failures.rank import read_failures

if TYPE_CHECKING:
    from aegis.failures.record import Failure

def is_retryable(code: int) -> bool:
    return code >= 128


def gang_exit_code(child_code: int, notes: Iterable[RankNote], signalled: bool) -> int:
    """The gang's exit code from torchrun's (``child_code``, negative for a signal), what
    the ranks noted, and whether the supervisor was told to stop.

    A rank that failed on its own account (1-127) fails the gang, and so does one that
    died without a word while nobody asked the gang to stop (a segfault, ``os._exit``):
    a retry would meet the same bug. Preemption, a lost peer, or a stop request is 143."""
    notes = list(notes)
    if child_code == 0 or (notes and all(note.exit_code == 0 for note in notes)):
        return 0  # every rank finished its work: a SIGTERM to torchrun after that changes nothing
    for note in notes:
        if note.exit_code is not None and 0 < note.exit_code < 128:
            return note.exit_code  # the lowest rank that failed on its own account
    if signalled:
        return PREEMPTED_EXIT_CODE
    if any(note.exit_code is None for note in notes):
        return 1
    if any(is_retryable(note.exit_code) for note in notes if note.exit_code is not None):
        return PREEMPTED_EXIT_CODE
    return 128 - child_code if child_code < 0 else child_code


class Supervisor:
    """Run a gang's launcher as a child: forward SIGTERM (and SIGINT, unless the terminal
    already delivers it to the child's process group), give its ranks a notes folder, and
    report the gang's exit code."""

    def __init__(self, argv: Sequence[str], env: Optional[dict[str, str]] = None, *,
                 forward_sigint: bool = True, run_dir: Optional[Path] = None,
                 notes_dir: Optional[Path] = None,
                 signal_gang: Optional[Callable[[int], None]] = None) -> None:
        # The ranks' notes: a private temp dir, or a folder every node can write (a gang across nodes)
        if notes_dir is not None:
            notes_dir.mkdir(parents=True, exist_ok=True)
        self.notes_dir = notes_dir or Path(tempfile.mkdtemp(prefix="aegis-gang-"))
        self.run_dir = run_dir  # where the failure is recorded; None: the terminal only
        self.first_attempt = _next_attempt(run_dir)  # summary.json's number of torchrun's first attempt
        self.argv = list(argv)
        base = dict(env if env is not None else os.environ)
        # torchrun SIGKILLs its ranks 30 s after passing a SIGTERM on, whatever the pod's
        # grace period: give them the grace period, less a moment for torchrun to exit.
        base.setdefault(SHUTDOWN_TIMEOUT_ENV, str(max(1, int(grace_period_s()) - 2)))
        self.env = {**base, NOTES_ENV: str(self.notes_dir)}
        self.forward_sigint = forward_sigint
        # How a signal reaches the ranks: to the child by default; a launcher whose child must
        # not be signalled itself (srun ends its step on SIGTERM) passes its own way.
        self.signal_gang = signal_gang
        self.signalled = False
        self.process: Optional[subprocess.Popen] = None
        self._previous: dict[int, object] = {}

    def start(self) -> "Supervisor":
        """Handlers first, then the child: a SIGTERM in between is passed on once it exists."""
        self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._forward)
        self._previous[signal.SIGINT] = signal.signal(
            signal.SIGINT, self._forward if self.forward_sigint else signal.SIG_IGN)
        try:
            self.process = subprocess.Popen(self.argv, env=self.env)
        except BaseException:
            self._cleanup()
            raise
        if self.signalled:
            self._send(signal.SIGTERM)
        return self

    def stop(self) -> None:
        """Ask the gang to stop as a SIGTERM to this supervisor would: the ranks checkpoint."""
        self._forward(signal.SIGTERM)

    def _forward(self, signum: int, _frame: object = None) -> None:
        if signum == signal.SIGTERM:
            self.signalled = True
        if self.process is not None and self.process.poll() is None:
            self._send(signum)

    def _send(self, signum: int) -> None:
        if self.signal_gang is not None:
            self.signal_gang(signum)
        else:
            assert self.process is not None
            self.process.send_signal(signum)

    def wait(self) -> int:
        assert self.process is not None, "start() first"
        try:
            code = self.process.wait()
            notes = read_notes(self.notes_dir)
            exit_code = gang_exit_code(code, notes, self.signalled)
            self._triage(exit_code, notes)
        finally:
            self._cleanup()
        return exit_code

    def _triage(self, exit_code: int, notes: list[RankNote]) -> None:
        """Which rank failed and why, for this failed gang and each failure a restart
        recovered from; delivered by ``aegis.failures.report``. Never raises: the
        exit code is what counts."""
        try:
            from aegis.launch.elastic import read_attempts
            from aegis.failures.report import report
            from aegis.failures.triage import gang_failure

            attempts, own = read_attempts(self.notes_dir), read_failures(self.notes_dir)
            # 143: preempted, or lost a peer that another node's supervisor reports: retryable, not failed
            failed = exit_code not in (0, PREEMPTED_EXIT_CODE)
            last = max([*attempts, *own, 0]) if exit_code != 0 else None  # the attempt that ended it: no restart
            restarts = {}
            for restart in sorted(set(attempts) | set(own)):
                if restart != last:
                    why = gang_failure(attempts.get(restart, {}).get("failures", []), own.get(restart, {}),
                                       run_dir=self.run_dir)
                    if why is not None:
                        restarts[restart] = why
            failure = None
            if failed:
                failure = gang_failure(attempts.get(last, {}).get("failures", []), own.get(last, {}), notes,
                                       run_dir=self.run_dir)
                if failure is None:
                    from aegis.failures.record import Failure, signal_of_exit

                    failure = Failure(f"the gang's launcher exited with code {exit_code} before any rank "
                                      "recorded how it ended", exit_code=exit_code, signal=signal_of_exit(exit_code))
            report(failure, self.run_dir, first_attempt=self.first_attempt, restarts=restarts,
                   summary=_records_for_the_gang(failure))
        except Exception as exc:  # a report that fails must not change the gang's exit code
            print(f"aegis: could not say why the gang failed: {type(exc).__name__}: {exc}", file=sys.stderr)

    def _cleanup(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()
        for path in self.notes_dir.glob("*"):
            path.unlink(missing_ok=True)
        try:
            self.notes_dir.rmdir()
        except OSError:
            pass


def _records_for_the_gang(failure: Optional["Failure"]) -> bool:
    """Whether this node's supervisor writes summary.json and tags the run: node 0's always;
    another node's (its pod sees only its own ranks) only for a failure of its own, never for
    a rank that merely lost its peer, which would overwrite the node that knows the cause."""
    if os.environ.get("PET_NODE_RANK", "0") in ("", "0"):
        return True
    from aegis.failures.triage import is_own

    return failure is not None and is_own(failure)


def _next_attempt(run_dir: Optional[Path]) -> int:
    """The attempt number the run dir's next attempt gets in ``summary.json``."""
    try:
        record = json.loads((run_dir / "summary.json").read_text()) if run_dir is not None else {}
    except (OSError, ValueError):
        record = {}
    return len(record.get("attempts") or []) + 1 if isinstance(record, dict) else 1


def _run_dir_of(args: Sequence[str]) -> Optional[Path]:
    """The run dir a pod's command pins (``hydra.run.dir=...``, as every launcher passes it)."""
    for arg in args:
        if arg.startswith("hydra.run.dir="):
            return Path(arg.split("=", 1)[1].strip("'\""))
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: python -m aegis.launch.gang [--] COMMAND [ARGS...]  (e.g. torchrun train.py ...)",
              file=sys.stderr)
        return 2
    from aegis.launch import elastic  # light: its torch imports are in main()

    if args[0] == elastic.EXECUTABLE:  # the same torchrun, recording how each rank ended (aegis.launch.elastic)
        args = [sys.executable, "-m", "aegis.launch.elastic", *args[1:]]
    from aegis.launch import restart_budget  # a pod's own retry bound where its env sets one; a no-op elsewhere

    attempt = restart_budget.begin()
    spent = restart_budget.refuse(attempt)
    if spent is not None:
        return spent
    try:
        supervisor = Supervisor(args, run_dir=_run_dir_of(args)).start()
    except OSError as exc:
        print(f"Error: cannot start {args[0]!r}: {exc.strerror or exc}.", file=sys.stderr)
        return 127
    code = supervisor.wait()
    if attempt is not None:
        attempt.end(code, stopped=supervisor.signalled)
    return code


if __name__ == "__main__":
    sys.exit(main())
