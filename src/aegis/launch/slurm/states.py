"""SLURM's job states, as Aegis's: one ``State``, a reason in words, an exit code.

A job SLURM requeues (a time limit or a preemption Aegis turned into a requeue, or
``scontrol requeue``) passes through REQUEUED and PENDING back to RUNNING: those are
not ends, so a follower keeps following. The run's own record (``summary.json``) refines
what SLURM cannot know: a gang that stopped with a checkpoint and was not requeued is
``preempted`` (the same command resumes), not merely FAILED with 143.
"""

from __future__ import annotations

from typing import Optional

from aegis.core.lifecycle import State
from aegis.launch.slurm.cluster import SlurmJob

_WAITING = {"PENDING": State.queued, "REQUEUED": State.queued, "REQUEUE_HOLD": State.queued,
            "REQUEUE_FED": State.queued, "SPECIAL_EXIT": State.queued, "RESV_DEL_HOLD": State.queued,
            "CONFIGURING": State.pending, "SUSPENDED": State.pending, "RESIZING": State.running,
            "RUNNING": State.running, "COMPLETING": State.running, "SIGNALING": State.running,
            "STAGE_OUT": State.running}
_ENDED = {"COMPLETED": (State.succeeded, None), "FAILED": (State.failed, None),
          "CANCELLED": (State.cancelled, "cancelled (scancel)"),
          "TIMEOUT": (State.failed, "reached its time limit (launcher.time) without being requeued"),
          "OUT_OF_MEMORY": (State.failed, "out of memory: SLURM killed it (raise launcher.mem)"),
          "NODE_FAIL": (State.failed, "a node of the job failed"),
          "BOOT_FAIL": (State.failed, "a node of the job failed to boot"),
          "DEADLINE": (State.failed, "reached its deadline"),
          "PREEMPTED": (State.preempted, "preempted by SLURM and not requeued"),
          "REVOKED": (State.cancelled, "revoked (federation)")}


def describe(job: SlurmJob, recorded: Optional[str] = None) -> tuple[State, Optional[str], Optional[int]]:
    """(state, reason, exit code) of ``job``; ``recorded`` is the run's own latest status."""
    word = job.state.rstrip("+")
    again = f" (restart {job.restarts})" if job.restarts else ""
    if word in _WAITING:
        state = _WAITING[word]
        if word == "PENDING" and job.restarts:
            return state, f"requeued{again}, waiting: {job.reason or 'to be scheduled'}", None
        if word == "PENDING":
            return state, f"pending: {job.reason or 'waiting to be scheduled'}", None
        if word in ("REQUEUED", "REQUEUE_FED", "SPECIAL_EXIT"):
            return state, f"requeued{again}: it resumes from last.ckpt", None
        if word == "REQUEUE_HOLD":
            return state, f"requeued and held: scontrol release {job.job_id} starts it", None
        return state, {"SUSPENDED": "suspended", "CONFIGURING": "its nodes are being set up"}.get(word), None
    state, reason = _ENDED.get(word, (State.unknown, f"SLURM state {job.state}"))
    code = job.code
    if state is State.succeeded:
        return state, None, 0
    if state is State.failed and recorded == "preempted" and code == 143:
        return State.preempted, "stopped with a checkpoint and not requeued (launcher.max_requeues spent): " \
                                "the same command resumes", 143
    if state is State.cancelled:
        return state, reason, 143
    if word == "OUT_OF_MEMORY":
        code = 137 if not code or code == 0 else code
    if state is State.failed and reason is None:
        reason = f"exited with code {code}" if code is not None else None
    return state, reason, code if code else (1 if state is State.failed else code)
