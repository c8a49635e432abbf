"""Status, logs and cancel for jobs that are processes on this machine (local, torchrun).

The truth about such a job is in its run dir: ``job.json`` names the process to signal,
``summary.json`` is the run's own record of each attempt (``aegis.training.record``),
and ``train.log`` / ``train.rank<N>.log`` are each rank's log. A record that says
``running`` while its process is gone means the process was killed outright.
Nothing here imports torch.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import Any, Iterator, Optional

from aegis.errors import AegisError
from aegis.core.lifecycle import (CANCEL_FILE, JOB_FILE, JobRef, JobStatus, ReplicaStatus, State, process_alive,
                                    process_cmdline, process_start_time, valid_pid)

LOG_FILE = "train.log"
# The run's record status -> the job's state.
_RECORDED = {
    "completed": State.succeeded,
    "failed": State.failed,
    "preempted": State.preempted,
    "cancelled": State.cancelled,
    "stopped": State.cancelled,  # a search stopped the trial early
    "killed": State.failed,
}
_EXIT_CODES = {State.succeeded: 0, State.failed: 1, State.preempted: 143, State.cancelled: 143}
# A record still ``running`` with its process gone: none of Python's exit paths ran (each writes
# the record), which is what SIGKILL does (kill -9, the OOM killer); so does a crash in native code.
KILLED_WITHOUT_RECORD = ("killed by SIGKILL (kill -9 or the OOM killer) or a crash in native code: the process "
                         "ended without writing its record")
KILLED_EXIT_CODE = 137  # 128 + SIGKILL


class JobNotRunning(AegisError):
    """A request (cancel) for a job that is not running."""


def read_record(run_dir: Path) -> dict[str, Any]:
    from aegis.core.files import read_json

    return read_json(Path(run_dir) / "summary.json") or {}


def latest_attempt(record: dict[str, Any]) -> dict[str, Any]:
    attempts = record.get("attempts") or []
    return attempts[-1] if attempts else record


def process_status(ref: JobRef) -> JobStatus:
    record = read_record(Path(ref.run_dir))
    attempt = latest_attempt(record)
    recorded = attempt.get("status")
    alive = process_alive(ref.pid, ref.host)
    if recorded in _RECORDED:
        state = _RECORDED[recorded]
        reason = attempt.get("cause") or (attempt.get("error") if state is State.failed else None)
    elif recorded == "running" and alive is False:
        state, reason = State.failed, KILLED_WITHOUT_RECORD
    elif recorded == "running":
        state, reason = State.running, None
    elif alive:
        state, reason = State.pending, "starting (no record yet)"
    else:
        state, reason = State.unknown, "no record in the run dir and no process"
    details = {key: record.get(key) for key in ("metrics", "epochs_completed", "global_step", "world_size")
               if record.get(key) is not None}
    if (record.get("tracking") or {}).get("run_id"):
        details["tracking_run_id"] = record["tracking"]["run_id"]
    replicas = [ReplicaStatus(name, state, reason=None) for name in sorted(rank_logs(Path(ref.run_dir)))]
    return JobStatus(state, replicas, exit_code=_exit_code(state, reason), reason=reason, details=details)


def _exit_code(state: State, reason: Optional[str]) -> Optional[int]:
    """The exit code a state stands for; 137 (128 + SIGKILL) for a process killed outright."""
    return KILLED_EXIT_CODE if reason == KILLED_WITHOUT_RECORD else _EXIT_CODES.get(state)


def rank_logs(run_dir: Path) -> dict[str, Path]:
    """rank0 -> train.log, rank1 -> train.rank1.log, ..."""
    found = {}
    if (run_dir / LOG_FILE).is_file():
        found["rank0"] = run_dir / LOG_FILE
    for path in run_dir.glob("train.rank*.log"):
        found[path.name[len("train."):-len(".log")]] = path
    return found


def process_logs(ref: JobRef, replica: Optional[str] = None, follow: bool = False,
                 poll_s: float = 0.2) -> Iterator[str]:
    logs = rank_logs(Path(ref.run_dir))
    name = replica or "rank0"
    if name not in logs:
        if replica is None and (follow or not process_status(ref).state.terminal):
            logs[name] = Path(ref.run_dir) / LOG_FILE  # not written yet (the run is starting): wait for it, or say so
        else:
            known = ", ".join(sorted(logs)) or "none yet"
            raise AegisError(f"run {ref.run_id} has no log for replica {name!r}: its replicas are {known}.")
    yield from tail_file(logs[name], lambda: not process_status(ref).state.terminal, follow, poll_s)


def tail_file(path: Path, still_running: Any, follow: bool, poll_s: float) -> Iterator[str]:
    """Lines of ``path``; with ``follow``, new lines as they come until the job ends."""
    position, partial = 0, ""
    while True:
        running = follow and still_running()  # asked before reading: no line written before the end is missed
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                handle.seek(position)
                chunk = handle.read()
                position = handle.tell()
        except FileNotFoundError:
            chunk = ""
        text = partial + chunk
        lines = text.split("\n")
        partial = lines.pop()
        yield from lines
        if not running:
            if partial:
                yield partial
            return
        time.sleep(poll_s)


class ProcessJobs:
    """``status``/``logs``/``cancel`` of a launcher whose job is a process on this machine."""

    def status(self, ref: JobRef) -> JobStatus:
        return process_status(ref)

    def logs(self, ref: JobRef, replica: Optional[str] = None, follow: bool = False) -> Iterator[str]:
        return process_logs(ref, replica, follow)

    def cancel(self, ref: JobRef) -> None:
        process_cancel(ref)


def not_the_runs_process(ref: JobRef) -> Optional[str]:
    """Why the live pid ``job.json`` names is not the run's own process (a pid reused after
    the run was killed outright, or a planted or stale ``job.json``), or None when it is:
    its start time is the one recorded when the run claimed its dir; a record without one
    (an older Aegis) must name a process whose command line names the run dir or
    ``run_id=<id>``. Without /proc (not Linux) there is nothing to compare, and None."""
    job_file = Path(ref.run_dir) / JOB_FILE
    if not Path("/proc/self/stat").exists():
        return None
    if ref.start_time is not None:
        started = process_start_time(ref.pid)  # type: ignore[arg-type]
        if started is None:
            return f"run {ref.run_id}'s process (pid {ref.pid}) ended before it could be cancelled."
        if started != ref.start_time:
            return (f"pid {ref.pid} is not run {ref.run_id}'s process: it started at tick {started}, not at tick "
                    f"{ref.start_time} as {job_file} records (the pid was reused, or the file is not the run's), "
                    "so nothing was signalled.")
        return None
    cmdline = process_cmdline(ref.pid) or ""  # type: ignore[arg-type]
    named = str(ref.run_dir) in cmdline or any(
        arg.lstrip("+") == f"run_id={ref.run_id}" for arg in cmdline.split())
    if not named:
        return (f"pid {ref.pid} is not shown to be run {ref.run_id}'s process: {job_file} records no start time and "
                f"the process's command line ({cmdline[:80]!r}) names neither the run dir nor run_id={ref.run_id}, "
                "so nothing was signalled (stop the run yourself if that process is its).")
    return None


def process_cancel(ref: JobRef) -> None:
    """SIGTERM to the job's process: training saves ``last.ckpt`` and records ``cancelled``.
    Refused, with nothing written or signalled, when the pid is not the run's own process."""
    if ref.pid is not None and not valid_pid(ref.pid):
        raise AegisError(f"{Path(ref.run_dir) / JOB_FILE} names pid {ref.pid!r}, which is not one process "
                         "(expected a whole number >= 1): nothing was signalled.")
    state = process_status(ref).state
    if state.terminal:
        raise JobNotRunning(f"run {ref.run_id} is not running (it is {state.value}): there is nothing to cancel.")
    alive = process_alive(ref.pid, ref.host)
    if alive is None:
        raise JobNotRunning(f"run {ref.run_id} runs on host {ref.host}, not this one: cancel it there "
                            f"(python -m aegis cancel {ref.run_id}).")
    if not alive:
        raise JobNotRunning(f"run {ref.run_id} has no live process (pid {ref.pid}): there is nothing to cancel.")
    foreign = not_the_runs_process(ref)
    if foreign:
        raise AegisError(foreign)
    marker = Path(ref.run_dir) / CANCEL_FILE
    marker.write_text(f"{time.time()}\n")
    try:
        os.kill(int(ref.pid), signal.SIGTERM)  # type: ignore[arg-type]
    except ProcessLookupError:
        marker.unlink(missing_ok=True)
        raise JobNotRunning(f"run {ref.run_id} ended before it could be cancelled.") from None


def claim_run_dir(launcher: str, run_dir: Path, run_id: str, pid: int) -> JobRef:
    """Record ``pid`` (and its start time, so that ``cancel`` signals this process and not a
    later one given the same pid) as the run's job and forget an earlier attempt's cancel
    request."""
    (run_dir / CANCEL_FILE).unlink(missing_ok=True)
    ref = JobRef(launcher=launcher, run_id=run_id, run_dir=str(run_dir), pid=pid, host=socket.gethostname(),
                 start_time=process_start_time(pid))
    ref.write()
    return ref
