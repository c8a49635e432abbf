"""``launcher=slurm``: submit the run as one SLURM batch job and follow it by its job id.

The parent never imports torch. It renders the batch script (``render``), asks the
cluster whether the request can start at all (``preflight``, from validation), writes
the script into the run dir and submits it with ``sbatch``, records the job id in
``job.json`` and follows the job's console file and state until SLURM says it ended,
through any number of requeues; the exit status is the job's. ``aegis
status/logs/cancel RUN`` work from ``job.json`` alone, on the submit host, through
``scontrol``/``sacct``/``scancel``.
"""

from __future__ import annotations

import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

from omegaconf import DictConfig

from aegis.errors import AegisError
from aegis.launch.base import MOST_NODES, MOST_PROCESSES_PER_NODE, MOST_RESTARTS, Launcher, RunContext, gang_size
from aegis.core.lifecycle import CANCEL_FILE, JobRef, JobStatus, ReplicaStatus, State
from aegis.launch.process import JobNotRunning, latest_attempt, process_status, rank_logs, read_record, tail_file
from aegis.launch.slurm import cluster, states
from aegis.launch.slurm.render import BatchJob, console_file

if TYPE_CHECKING:
    from aegis.errors import Problems

KIND = "SlurmJob"
CONSOLE_REPLICA = "console"
UNREACHABLE_GRACE_S = 300.0  # a follower rides out slurmctld being busy or restarting this long


def say(message: str, prefix: str = "") -> None:
    print(f"{prefix}[slurm] {message}", file=sys.stderr, flush=True)


@dataclass
class Submitted:
    job: BatchJob
    ref: Optional[JobRef]  # None: a dry run
    deferred: bool = False


class SlurmLauncher(Launcher[BatchJob, Submitted]):
    name = "slurm"
    bounds = {"nodes": MOST_NODES, "tasks_per_node": (MOST_PROCESSES_PER_NODE[0], "tasks per node"),
              "gpus_per_node": (64, "GPUs per node"), "cpus_per_task": (1024, "CPUs per task"),
              "max_requeues": (MOST_RESTARTS[0], "requeues")}
    example_overrides = ("strategy=ddp", "launcher.tasks_per_node=2")

    def world_size(self, cfg: DictConfig) -> Optional[int]:
        return gang_size(cfg.launcher, "tasks_per_node", "nodes")

    def check(self, cfg: DictConfig, found: "Problems") -> None:
        from aegis.launch.slurm.checks import check

        check(cfg, found)

    def check_backend(self, cfg: DictConfig, found: "Problems") -> None:
        if not cluster.available():
            return  # no SLURM here (a dry run on a laptop): sbatch would say it, on the cluster
        from aegis.launch.slurm import preflight
        from aegis.launch.slurm.render import request_of

        try:
            preflight.check(request_of(cfg.launcher), found)
        except cluster.SlurmError as exc:
            if not cfg.launcher.dry_run:  # a dry run prints the script whether or not a cluster answers
                found.add(f"launcher=slurm cannot ask this cluster about the job: {exc}")

    def render(self, cfg: DictConfig, ctx: RunContext) -> BatchJob:
        from aegis.launch.slurm.render import render
        from aegis.core.launch_origin import launch_env

        return render(cfg, ctx, launch_env(self.name, ctx))

    def submit(self, rendered: BatchJob) -> Submitted:
        rendered.run_dir.mkdir(parents=True, exist_ok=True)
        rendered.script_path.write_text(rendered.script)
        if rendered.settings.get("dry_run"):
            sys.stdout.write(rendered.script)
            sys.stdout.flush()
            say(f"dry run: nothing submitted; the batch script is {rendered.script_path}")
            return Submitted(rendered, None)
        (rendered.run_dir / CANCEL_FILE).unlink(missing_ok=True)  # an earlier attempt's cancel is no longer asked
        job_id, cluster_name = cluster.submit(str(rendered.script_path), cwd=rendered.cwd)
        label = f"SLURM job {job_id}" + (f" on cluster {cluster_name}" if cluster_name else "")
        ref = JobRef(launcher=self.name, run_id=rendered.run_id, run_dir=str(rendered.run_dir), kind=KIND,
                     name=rendered.name, host=socket.gethostname(),
                     backend={"job_id": job_id, "cluster": cluster_name, "submit_host": socket.gethostname(),
                              "label": label})
        ref.write()
        say(f"submitted {label} for run {rendered.run_id} ({rendered.run_dir}); its console: "
            f"{console_file(rendered.run_dir, job_id)}")
        from aegis.launch import deferred

        if rendered.settings.get("wait", True) and deferred.deferring():
            poll = float(rendered.settings.get("poll_interval_s", 2.0))
            deferred.defer(f"run {rendered.run_id} ({label})",
                           lambda: self.follow_ref(ref, poll, prefix=f"[{rendered.run_id}] "),
                           reattach=lambda: f"{label} goes on; follow it again: python -m aegis logs "
                                            f"{rendered.run_id} --follow")
            return Submitted(rendered, ref, deferred=True)
        return Submitted(rendered, ref)

    def follow(self, handle: Submitted) -> int:
        if handle.ref is None or handle.deferred:
            return 0
        if not handle.job.settings.get("wait", True):
            say(f"not waiting (launcher.wait=false): python -m aegis status {handle.ref.run_id} | logs "
                f"{handle.ref.run_id} --follow | cancel {handle.ref.run_id}")
            return 0
        return self.follow_ref(handle.ref, float(handle.job.settings.get("poll_interval_s", 2.0)))

    def follow_ref(self, ref: JobRef, poll_s: float, prefix: str = "") -> int:
        """The job's console as it is written and each change of its state, to its real end
        (through requeues); the job's exit status."""
        follower = _Follower(self, ref, prefix)
        try:
            for line in tail_file(console_file(ref.run_dir, ref.backend["job_id"]), follower.running, True, poll_s):
                print(prefix + line, flush=True)
        except KeyboardInterrupt:
            say(f"stopped following; {ref.describe()} goes on. Follow again: python -m aegis logs {ref.run_id} "
                f"--follow; stop it: python -m aegis cancel {ref.run_id}", prefix)
            return 130
        status = follower.last or self.status(ref)
        if status.details.get("failure"):
            from aegis.failures.record import Failure

            print(Failure.from_dict(status.details["failure"]).paragraph(), file=sys.stderr)
        return status.exit_status()

    # ------------------------------------------------------------------ after submission

    def status(self, ref: JobRef) -> JobStatus:
        job_id = ref.backend.get("job_id")
        if not job_id:
            return JobStatus(State.unknown, reason="job.json names no SLURM job id")
        reachable = cluster.available()
        job = cluster.job(str(job_id)) if reachable else None
        attempt = latest_attempt(read_record(Path(ref.run_dir)))
        ran = process_status(ref)  # what the run's own record says: metrics, tracking run, failure
        if job is None:
            where = f"SLURM no longer knows job {job_id}" if reachable else "SLURM is not reachable from this machine"
            return JobStatus(ran.state, ran.replicas, ran.exit_code, f"{where}; from the run's record: "
                             f"{ran.reason or ran.state.value}", {**ran.details, "slurm_job_id": job_id})
        foreign = _not_this_run(job, ref)
        if foreign:
            return JobStatus(State.unknown, reason=foreign, details={"slurm_job_id": job_id})
        state, reason, code = states.describe(job, attempt.get("status"))
        if state is State.failed and attempt.get("status") == "failed" and attempt.get("cause"):
            reason = attempt["cause"]
        details = {**ran.details, "slurm_job_id": job_id, "slurm_state": job.state}
        if job.restarts:
            details["slurm_restarts"] = job.restarts
        if state is State.failed and isinstance(attempt.get("failure"), dict):
            details["failure"] = attempt["failure"]
        replicas = [ReplicaStatus(CONSOLE_REPLICA, state, code if state.terminal else None, node=job.nodes)]
        replicas += [ReplicaStatus(name, state, node=job.nodes) for name in sorted(rank_logs(Path(ref.run_dir)))]
        return JobStatus(state, replicas, code, reason, details)

    def logs(self, ref: JobRef, replica: Optional[str] = None, follow: bool = False) -> Iterator[str]:
        name = replica or CONSOLE_REPLICA
        files = {CONSOLE_REPLICA: console_file(ref.run_dir, ref.backend.get("job_id", "?")),
                 **rank_logs(Path(ref.run_dir))}
        if name not in files:
            raise AegisError(f"run {ref.run_id} has no log for replica {name!r}: its replicas are "
                             f"{', '.join(sorted(files))}.")
        follower = _Follower(self, ref, quiet=True)
        return tail_file(files[name], follower.running, follow, 1.0)

    def cancel(self, ref: JobRef) -> None:
        """``scancel``: a pending job is removed; a running gang gets SIGTERM, saves last.ckpt
        and ends ``cancelled``, and the supervisor does not requeue it (``cancel.requested``)."""
        job_id = ref.backend.get("job_id")
        job = cluster.job(str(job_id)) if job_id else None
        if job is None:
            raise JobNotRunning(f"run {ref.run_id} has no SLURM job this cluster knows (job.json names "
                                f"{job_id or 'none'}): there is nothing to cancel.")
        foreign = _not_this_run(job, ref)
        if foreign:
            raise AegisError(f"{foreign}: nothing cancelled.")
        state, _, _ = states.describe(job)
        if state.terminal:
            raise JobNotRunning(f"run {ref.run_id} is not running (SLURM job {job_id} is {job.state}): there is "
                                "nothing to cancel.")
        marker = Path(ref.run_dir) / CANCEL_FILE
        marker.write_text(f"{time.time()}\n")
        cluster.cancel(str(job_id))


def _not_this_run(job: cluster.SlurmJob, ref: JobRef) -> Optional[str]:
    """Why SLURM's job is not the one this run submitted (a planted or stale job.json), or None."""
    if ref.name and job.name and job.name != ref.name:
        return (f"SLURM job {job.job_id} is {job.name!r}, not run {ref.run_id}'s job ({ref.name!r}): job.json "
                "does not name this run's job")
    if job.stdout and Path(job.stdout).parent != Path(ref.run_dir):
        return (f"SLURM job {job.job_id} writes to {job.stdout}, outside run {ref.run_id}'s dir: job.json does "
                "not name this run's job")
    return None


class _Follower:
    """Asked before each read of the console: is the job still going? Says each change of state once."""

    def __init__(self, launcher: SlurmLauncher, ref: JobRef, prefix: str = "", quiet: bool = False) -> None:
        self.launcher, self.ref, self.prefix, self.quiet = launcher, ref, prefix, quiet
        self.last: Optional[JobStatus] = None
        self.said: Optional[tuple] = None
        self.unreachable_since: Optional[float] = None

    def running(self) -> bool:
        try:
            status = self.launcher.status(self.ref)
        except cluster.SlurmError as exc:
            now = time.monotonic()
            self.unreachable_since = self.unreachable_since or now
            if now - self.unreachable_since > UNREACHABLE_GRACE_S:
                raise
            if not self.quiet and self.said != ("unreachable",):
                say(f"cannot reach SLURM ({exc}); still trying", self.prefix)
                self.said = ("unreachable",)
            return True
        self.unreachable_since = None
        self.last = status
        said = (status.state, status.reason)
        if said != self.said and not self.quiet:
            say(f"{self.ref.describe()}: {status.state.value}" + (f" ({status.reason})" if status.reason else ""),
                self.prefix)
        self.said = said
        return not status.state.terminal
