"""The config of ``launcher=slurm``: what sbatch is asked for, and how a stopped job comes back.

Defaults fit a small partition (one task, one CPU, the partition's default memory, one
hour), so the first submission starts anywhere; ``launcher.partition: null`` is the
cluster's default partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from aegis.config import checks as c
from aegis.config.checks import meta
from aegis.config.schema import LauncherConfig


@dataclass
class SlurmLauncherConfig(LauncherConfig):
    """sbatch's request (``nodes`` x ``tasks_per_node`` tasks, one per device) and the requeue policy."""

    name: str = "slurm"
    nodes: int = field(default=1, metadata=meta(c.at_least(1)))
    tasks_per_node: int = field(default=1, metadata=meta(c.at_least(1)))
    partition: Optional[str] = None  # null: the cluster's default partition
    time: str = "01:00:00"  # sbatch --time: the job's limit
    account: Optional[str] = None
    qos: Optional[str] = None
    gpus_per_node: int = field(default=0, metadata=meta(c.at_least(0)))
    cpus_per_task: int = field(default=1, metadata=meta(c.at_least(1)))
    mem: Optional[str] = None  # per node, sbatch --mem (e.g. 8G); null: the partition's default
    constraint: Optional[str] = None  # sbatch --constraint (node features)
    exclusive: bool = False
    # More sbatch options, each one "--option=value" (e.g. "--reservation=maint"); the ones
    # Aegis sets itself (output, signal, requeue, job name ...) are refused.
    sbatch_args: List[str] = field(default_factory=list)
    # Shell lines run in the batch script before the gang starts (e.g. "module load cuda/12.4").
    setup: List[str] = field(default_factory=list)
    # The warning SLURM sends this many seconds before the time limit (--signal=B:USR1@N):
    # the gang checkpoints at its next batch and the job is requeued. SLURM may send it up
    # to a minute early; it must leave time for a checkpoint to be written.
    signal_lead_s: int = field(default=120, metadata=meta(c.at_least(10)))
    # Times a stopped job (time limit, preemption) is requeued to resume from last.ckpt.
    max_requeues: int = field(default=3, metadata=meta(c.at_least(0)))
    # The interpreter the compute nodes run train.py with (null: this one, on a shared filesystem).
    python: Optional[str] = None
    dry_run: bool = False  # print the batch script, submit nothing
    wait: bool = True  # follow the job to its end here (false: submit, print the run id, return)
    poll_interval_s: float = field(default=2.0, metadata=meta(c.greater_than(0)))
