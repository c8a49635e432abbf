"""The batch script of a ``launcher=slurm`` run: pure, the exact text sbatch receives.

The script asks for the allocation (``#SBATCH``), a warning signal to the batch shell
``signal_lead_s`` before the time limit, requeueing, and one console file in the run dir
that a requeued job appends to. It then hands over to ``aegis.launch.slurm.batch``, the
supervisor that runs ``srun`` (one task per device: the DDP gang, in which Lightning's
SLURMEnvironment gives each task its rank) and turns a time limit or a preemption into
a checkpoint and a requeue. Each task re-enters the same entrypoint with the user's
overrides, ``launcher=local`` and the run dir pinned.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig

from aegis.launch.base import RunContext
from aegis.launch.slurm import times

SCRIPT_FILE = "slurm-job.sh"
CONSOLE = "slurm-%j.out"  # %j: the job id; a requeued job keeps it and appends
WARNING_SIGNAL = "USR1"


def console_file(run_dir: Path | str, job_id: str) -> Path:
    return Path(run_dir) / CONSOLE.replace("%j", str(job_id))


def job_name(run_id: str) -> str:
    return f"aegis-{run_id}"


def memory_mb(mem: Optional[str]) -> Optional[int]:
    """sbatch's --mem value in megabytes (no suffix: megabytes)."""
    if mem is None:
        return None
    text = str(mem).strip().upper()
    scale = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
    if text[-1:] in scale:
        return int(int(text[:-1]) * scale[text[-1]])
    return int(text)


@dataclass(frozen=True)
class Request:
    """What the job asks SLURM for, as numbers ``preflight`` compares with the cluster's nodes."""

    partition: Optional[str]
    nodes: int
    tasks_per_node: int
    cpus_per_task: int
    gpus_per_node: int
    memory_mb: Optional[int]
    time_s: int


@dataclass
class BatchJob:
    script: str
    run_dir: Path
    run_id: str
    name: str
    request: Request
    cwd: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def script_path(self) -> Path:
        return self.run_dir / SCRIPT_FILE


def request_of(launcher: DictConfig) -> Request:
    return Request(launcher.partition, launcher.nodes, launcher.tasks_per_node, launcher.cpus_per_task,
                   launcher.gpus_per_node, memory_mb(launcher.mem), times.seconds(launcher.time) or 0)


def render(cfg: DictConfig, ctx: RunContext, launch_env: dict[str, str]) -> BatchJob:
    launcher = cfg.launcher
    python = launcher.python or sys.executable
    name = job_name(ctx.run_id)
    time_s = times.seconds(launcher.time) or 0
    directives = [
        f"--job-name={name}",
        f"--nodes={launcher.nodes}",
        f"--ntasks-per-node={launcher.tasks_per_node}",
        f"--cpus-per-task={launcher.cpus_per_task}",
        f"--time={times.shown(time_s)}",
        *([f"--partition={launcher.partition}"] if launcher.partition else []),
        *([f"--account={launcher.account}"] if launcher.account else []),
        *([f"--qos={launcher.qos}"] if launcher.qos else []),
        *([f"--gpus-per-node={launcher.gpus_per_node}"] if launcher.gpus_per_node else []),
        *([f"--mem={launcher.mem}"] if launcher.mem else []),
        *([f"--constraint={launcher.constraint}"] if launcher.constraint else []),
        *(["--exclusive"] if launcher.exclusive else []),
        f"--output={ctx.run_dir / CONSOLE}",
        "--open-mode=append",
        f"--signal=B:{WARNING_SIGNAL}@{launcher.signal_lead_s}",
        "--requeue" if launcher.max_requeues > 0 else "--no-requeue",
        *[str(arg) for arg in launcher.sbatch_args],
    ]
    env = {"AEGIS_SUPERVISED": "1",  # job.json is this job's, not a task's
           "PYTHONUNBUFFERED": "1",  # lines reach the console file as they are printed
           "OMP_NUM_THREADS": str(launcher.cpus_per_task), **launch_env}
    task = [python, ctx.entrypoint, *ctx.config_flags(), *ctx.child_overrides(launcher="local")]
    srun = ["srun", "--label", f"--cpus-per-task={launcher.cpus_per_task}", *task]
    supervisor = [python, "-m", "aegis.launch.slurm.batch", f"--run-dir={ctx.run_dir}",
                  f"--max-requeues={launcher.max_requeues}", "--", *srun]
    lines = ["#!/bin/bash",
             f"# Aegis run {ctx.run_id}, rendered by launcher=slurm from: python {Path(ctx.entrypoint).name} "
             + " ".join(shlex.quote(o) for o in ctx.task_overrides),
             *(f"#SBATCH {shlex.quote(d)}" for d in directives),
             ""]
    if launcher.setup:
        lines += ["# launcher.setup", *(str(line) for line in launcher.setup), ""]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in env.items()]
    lines += ["# The supervisor forwards SLURM's signals to the gang and requeues a stopped job "
              "(python -m aegis.launch.slurm.batch --help).",
              "exec " + " \\\n    ".join(_shell_groups(supervisor)), ""]
    request = request_of(launcher)
    settings = {"dry_run": bool(launcher.dry_run), "wait": bool(launcher.wait),
                "poll_interval_s": float(launcher.poll_interval_s)}
    return BatchJob("\n".join(lines), ctx.run_dir, ctx.run_id, name, request, os.getcwd(), settings)


def _shell_groups(argv: list[str]) -> list[str]:
    """The command in readable lines: the supervisor, srun, the task."""
    quoted = [shlex.quote(a) for a in argv]
    cut = argv.index("srun")
    task_at = cut + next(i for i, a in enumerate(argv[cut:]) if not a.startswith("-") and a != "srun")
    return [" ".join(quoted[:cut]), " ".join(quoted[cut:task_at]), " ".join(quoted[task_at:])]
