"""``launcher=torchrun``: a DDP gang on this machine (or on several, by hand).

The parent never imports torch: it renders a ``torchrun`` command that re-enters the
same entrypoint with the user's overrides, ``launcher=local`` and the run dir pinned,
runs it, forwards SIGTERM (so a preempted gang checkpoints) and returns the gang's exit
code. torchrun itself exits 1 when it is told to stop, however cleanly its workers
checkpointed; after a SIGTERM the parent reads the run's record instead, and exits 143
(preempted, resumable) when rank 0 recorded its preemption checkpoint.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from aegis.launch.base import Launcher, ProcessPlan, RunContext
from aegis.launch.local.launcher import SUPERVISED_ENV, claim_run_dir
from aegis.launch.process import ProcessJobs, latest_attempt, read_record

if TYPE_CHECKING:
    from aegis.errors import Problems

PREEMPTED_EXIT_CODE = 143

log = logging.getLogger(__name__)


def torchrun_flags(launcher: DictConfig) -> list[str]:
    flags = [f"--nproc-per-node={launcher.nproc_per_node}", f"--nnodes={launcher.nnodes}"]
    if launcher.nnodes == 1 and launcher.master_port is None:
        flags.append("--standalone")
    else:
        flags += [
            f"--node-rank={launcher.node_rank}",
            f"--master-addr={launcher.master_addr}",
            f"--master-port={launcher.master_port}",
        ]
    flags += [
        f"--max-restarts={launcher.max_restarts}",
        f"--monitor-interval={launcher.monitor_interval_s}",
    ]
    return flags


def hydra_flags(ctx: RunContext) -> list[str]:
    flags = [f"--config-name={ctx.config_name}"]
    flags += [f"--config-dir={d}" for d in ctx.config_dirs]
    return flags


def threads_per_process(nproc_per_node: int) -> int:
    return max(1, (os.cpu_count() or 1) // nproc_per_node)


class TorchrunLauncher(ProcessJobs, Launcher[ProcessPlan, subprocess.Popen]):
    name = "torchrun"
    trains_here = True

    def check(self, cfg: DictConfig, found: "Problems") -> None:
        from aegis.launch.torchrun.checks import check

        check(cfg, found)

    def render(self, cfg: DictConfig, ctx: RunContext) -> ProcessPlan:
        argv = [sys.executable, "-m", "torch.distributed.run", *torchrun_flags(cfg.launcher)]
        argv += [ctx.entrypoint, *hydra_flags(ctx), *ctx.child_overrides(launcher="local")]
        env = {SUPERVISED_ENV: "1"}  # job.json names this parent, not a rank
        if "OMP_NUM_THREADS" not in os.environ:
            env["OMP_NUM_THREADS"] = str(threads_per_process(cfg.launcher.nproc_per_node))
        world = cfg.launcher.nproc_per_node * cfg.launcher.nnodes
        return ProcessPlan(argv, env, f"torchrun gang of {world} processes in {ctx.run_dir}", run_dir=ctx.run_dir,
                           run_id=ctx.run_id)

    def submit(self, rendered: ProcessPlan) -> "Gang":
        log.info("Launching %s", rendered.description)
        log.info("Command: %s", rendered.shell())
        if rendered.run_dir is not None:
            claim_run_dir(self.name, rendered.run_dir, str(rendered.run_id), os.getpid())  # cancel signals this parent
        return Gang(subprocess.Popen(rendered.argv, env={**os.environ, **rendered.env}), rendered.run_dir)


    def follow(self, gang: "Gang") -> int:
        handle = gang.process

        def forward(signum: int, _frame: object) -> None:
            if signum == signal.SIGTERM:
                gang.terminated = True
            handle.send_signal(signum)

        # SIGTERM (preemption) goes to torchrun, which stops its workers gracefully; a
        # terminal's Ctrl-C already reaches torchrun through the process group.
        previous = {
            signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
            signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
        }
        try:
            code = handle.wait()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        code = 128 - code if code < 0 else code
        if gang.terminated and code != 0 and gang.checkpointed_preemption():
            return PREEMPTED_EXIT_CODE
        return code


@dataclass
class Gang:
    process: subprocess.Popen
    run_dir: Path | None
    terminated: bool = field(default=False)

    def checkpointed_preemption(self) -> bool:
        """Rank 0 recorded this attempt as preempted: its last.ckpt holds the gang's state."""
        if self.run_dir is None:
            return False
        return latest_attempt(read_record(self.run_dir)).get("status") in ("preempted", "cancelled")
