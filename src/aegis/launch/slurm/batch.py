"""The supervisor inside a ``launcher=slurm`` job: ``python -m aegis.launch.slurm.batch -- srun ...``.

The batch script ``exec``s this module, so it is the batch shell SLURM signals:

- **USR1**, ``launcher.signal_lead_s`` before the time limit (``--signal=B:USR1@N``): the
  gang is asked to stop (SIGTERM to srun, which passes it to every task), every rank stops
  at the same batch and ``last.ckpt`` is written; then the job requeues itself.
- **A preemption** (PreemptMode=REQUEUE with a GraceTime): SLURM SIGTERMs the tasks only
  and leaves the job RUNNING; the gang checkpoints and exits 143, and the job requeues
  itself (SLURM would record it COMPLETED or FAILED and never requeue it).
- **SIGTERM to the batch shell** (``scancel``, ``scontrol requeue``, the time limit itself):
  passed on; SLURM has already ended or requeued the job, and nothing more is done.

A requeued job keeps its job id and run dir and resumes from ``last.ckpt``, at most
``--max-requeues`` times (``SLURM_RESTART_COUNT`` counts them). The exit status is the
gang's, as ``aegis.launch.gang`` reads it from each rank's note: 143 for a clean stop,
a rank's own code (1-127) for its failure. No torch import.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from aegis.core.rank_notes import PREEMPTED_EXIT_CODE
from aegis.launch.gang import Supervisor
from aegis.core.lifecycle import CANCEL_FILE

TIME_LIMIT = "the time limit is near"
PREEMPTED = "preempted: SLURM stopped the tasks for another job"
SLURM_RECORD = "slurm.json"  # in the run dir: the job's requeues and why, newest last


def say(message: str) -> None:
    print(f"aegis[slurm]: {message}", file=sys.stderr, flush=True)


def restart_count() -> int:
    value = os.environ.get("SLURM_RESTART_COUNT", "0")
    return int(value) if value.isdigit() else 0


def rendezvous_env() -> dict[str, str]:
    """MASTER_ADDR for the gang: the address SLURM reaches this node (the job's first) by.

    Lightning's SLURMEnvironment otherwise takes the first node's *name* from the node list,
    which need not resolve (a node named apart from its host); a MASTER_ADDR the user set wins."""
    if os.environ.get("MASTER_ADDR") or not os.environ.get("SLURMD_NODENAME"):
        return {}
    from aegis.launch.slurm import cluster

    try:
        node = cluster.node_address(os.environ["SLURMD_NODENAME"])
    except cluster.SlurmError:
        return {}
    return {"MASTER_ADDR": node} if node else {}


class BatchSupervisor:
    def __init__(self, command: Sequence[str], run_dir: Path, max_requeues: int) -> None:
        self.run_dir = run_dir
        self.max_requeues = max_requeues
        self.job_id = os.environ.get("SLURM_JOB_ID", "")
        self.restarts = restart_count()
        self.why: Optional[str] = None  # what asked the gang to stop
        env = {**os.environ, **rendezvous_env()}
        self.gang = Supervisor(command, env, run_dir=run_dir, notes_dir=run_dir / ".gang" / f"{self.job_id}-{self.restarts}",
                               signal_gang=self._signal_tasks)

    def run(self) -> int:
        signal.signal(signal.SIGUSR1, self._time_limit)  # before the gang exists: a stop is passed on once it does
        say(f"SLURM job {self.job_id} on {os.environ.get('SLURM_JOB_NODELIST', '?')}, "
            f"{os.environ.get('SLURM_NTASKS', '1')} tasks, start {self.restarts + 1} "
            f"(requeues left: {max(0, self.max_requeues - self.restarts)})")
        self.gang.start()
        self._note_sigterm()
        code = self.gang.wait()
        return self.finish(code)

    def _signal_tasks(self, signum: int) -> None:
        """The signal to every task of the job's steps, on every node, as SLURM sends it on a
        preemption: ``scancel --signal`` without --full spares this batch shell and srun
        (which, signalled itself, would end its step at once: "srun: forcing job termination")."""
        from aegis.launch.slurm import cluster

        try:
            # in a signal handler: never wait long on a slurmctld that does not answer
            cluster.cancel(self.job_id, signal=signal.Signals(signum).name.removeprefix("SIG"), timeout=10)
        except cluster.SlurmError as exc:
            say(f"could not pass {signal.Signals(signum).name} to the gang: {exc}")

    def _time_limit(self, _signum: int, _frame: object = None) -> None:
        if self.why is None:
            self.why = TIME_LIMIT
            say("the time limit is near (SIGUSR1): the gang saves last.ckpt at its next batch")
        self.gang.stop()

    def _note_sigterm(self) -> None:
        """The gang's supervisor forwards SIGTERM; note that it came, for the requeue decision."""
        forward = signal.getsignal(signal.SIGTERM)

        def on_term(signum: int, frame: object) -> None:
            if self.why is None:
                self.why = "SIGTERM: a preemption, a requeue, scancel or the node going away"
                say("SIGTERM: the gang saves last.ckpt at its next batch")
            if callable(forward):
                forward(signum, frame)

        signal.signal(signal.SIGTERM, on_term)

    def finish(self, code: int) -> int:
        """Requeue a gang that stopped for the time limit or a preemption; leave other stops to SLURM.

        What SLURM 22.05 does (measured, tests/slurm/test_cluster.py): a preemption with a
        GraceTime SIGTERMs the job's steps only, while the job stays RUNNING, and a job that
        then exits, 0 or 143, is recorded COMPLETED or FAILED and never requeued; so this
        supervisor requeues it. After ``scancel`` or ``scontrol requeue`` the batch shell
        gets SIGTERM too and the job is already COMPLETING or requeued: a requeue from here
        would undo a user's scancel (SLURM accepts it), so nothing is done."""
        if code != PREEMPTED_EXIT_CODE:
            return code
        # The gang is done: a SIGTERM now (SLURM answering our own requeue) must not cut the record short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if (self.run_dir / CANCEL_FILE).exists():
            say("cancelled (aegis cancel) with last.ckpt saved; the same command resumes the run")
            return code
        why = self.why
        if why is None and self._state() == "RUNNING":
            why = PREEMPTED
        if why not in (TIME_LIMIT, PREEMPTED):
            say(f"stopped ({why or 'SIGTERM'}) with last.ckpt saved; SLURM ended or requeued the job itself "
                "(scancel, scontrol requeue): a requeued job resumes from last.ckpt, and so does the same command")
            self._record(why or "SIGTERM", requeued=None)
            return code
        if self.restarts >= self.max_requeues:
            say(f"stopped ({why}) with last.ckpt saved, and not requeued: launcher.max_requeues="
                f"{self.max_requeues} is spent. The same command resumes the run.")
            self._record(why, requeued=False, note=f"max_requeues={self.max_requeues} spent")
            return code
        from aegis.launch.slurm import cluster

        done, words = cluster.requeue(self.job_id)
        self._record(why, requeued=done, note=None if done else words)
        if done:
            say(f"stopped ({why}) with last.ckpt saved: SLURM job {self.job_id} is requeued "
                f"(requeue {self.restarts + 1} of {self.max_requeues}); it resumes from last.ckpt")
        else:
            say(f"stopped ({why}) with last.ckpt saved, but SLURM refused to requeue it: {words}")
        return code

    def _state(self) -> Optional[str]:
        from aegis.launch.slurm import cluster

        try:
            job = cluster.job(self.job_id)
        except cluster.SlurmError:
            return None
        return job.state if job else None

    def _record(self, why: str, requeued: Optional[bool], note: Optional[str] = None) -> None:
        """slurm.json in the run dir: every stop of this job and whether it was requeued."""
        from aegis.core.files import read_json, write_json

        path = self.run_dir / SLURM_RECORD
        record = read_json(path) or {}
        stops = record.get("stops") if isinstance(record.get("stops"), list) else []
        stops.append({"job_id": self.job_id, "start": self.restarts + 1, "at": time.time(), "why": why,
                      "requeued": requeued, **({"note": note} if note else {})})
        try:
            write_json(path, {"job_id": self.job_id, "stops": stops})
        except OSError as exc:
            say(f"could not write {path}: {exc}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aegis.launch.slurm.batch",
                                     description="Run a gang under srun inside a SLURM batch job: forward "
                                                 "SLURM's signals, requeue a job that stopped with a checkpoint.")
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--max-requeues", type=int, default=3)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- srun ... python train.py ...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run (expected: -- srun ...)")
    try:
        return BatchSupervisor(command, args.run_dir, args.max_requeues).run()
    except OSError as exc:
        say(f"cannot start {command[0]!r}: {exc.strerror or exc}")
        return 127


if __name__ == "__main__":
    sys.exit(main())
