"""``launcher=torchrun``: a DDP gang on this machine (or on several, by hand).

The parent never imports torch: it renders a ``torchrun`` command that re-enters the
same entrypoint with the user's overrides, ``launcher=local`` and the run dir pinned,
runs it under ``aegis.launch.gang.Supervisor``, which forwards SIGTERM (so a preempted
gang checkpoints) and returns the gang's exit code as its ranks noted it: torchrun itself
exits 1 when it is told to stop, however cleanly its workers checkpointed.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Optional

from omegaconf import DictConfig

from aegis.launch.base import (MOST_NODES, MOST_PROCESSES_PER_NODE, MOST_RESTARTS, Launcher, ProcessPlan, RunContext,
                               gang_size)
from aegis.launch.gang import Supervisor
from aegis.launch.process import ProcessJobs, claim_run_dir
from aegis.core.launch_origin import launch_env
from aegis.core.lifecycle import SUPERVISED_ENV

if TYPE_CHECKING:
    from aegis.errors import Problems

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


def threads_per_process(nproc_per_node: int) -> int:
    return max(1, (os.cpu_count() or 1) // nproc_per_node)


class TorchrunLauncher(ProcessJobs, Launcher[ProcessPlan, Supervisor]):
    name = "torchrun"
    bounds = {"nnodes": MOST_NODES, "nproc_per_node": MOST_PROCESSES_PER_NODE, "max_restarts": MOST_RESTARTS}
    trains_here = True

    def world_size(self, cfg: DictConfig) -> Optional[int]:
        return gang_size(cfg.launcher, "nproc_per_node", "nnodes")

    def check(self, cfg: DictConfig, found: "Problems") -> None:
        from aegis.launch.torchrun.checks import check

        check(cfg, found)

    def render(self, cfg: DictConfig, ctx: RunContext) -> ProcessPlan:
        # torchrun itself, recording how each rank ended for the supervisor (aegis.launch.elastic)
        argv = [sys.executable, "-m", "aegis.launch.elastic", *torchrun_flags(cfg.launcher)]
        argv += [ctx.entrypoint, *ctx.config_flags(), *ctx.child_overrides(launcher="local")]
        env = {SUPERVISED_ENV: "1"}  # job.json names this parent, not a rank
        env.update(launch_env(self.name, ctx))  # each rank's lineage names this launch (aegis.training.lineage)
        if "OMP_NUM_THREADS" not in os.environ:
            env["OMP_NUM_THREADS"] = str(threads_per_process(cfg.launcher.nproc_per_node))
        world = cfg.launcher.nproc_per_node * cfg.launcher.nnodes
        return ProcessPlan(argv, env, f"torchrun gang of {world} processes in {ctx.run_dir}", run_dir=ctx.run_dir,
                           run_id=ctx.run_id)

    def submit(self, rendered: ProcessPlan) -> Supervisor:
        log.info("Launching %s", rendered.description)
        log.info("Command: %s", rendered.shell())
        if rendered.run_dir is not None:
            claim_run_dir(self.name, rendered.run_dir, str(rendered.run_id), os.getpid())  # cancel signals this parent
        # SIGTERM (preemption) goes on to torchrun, which stops its workers gracefully; a
        # terminal's Ctrl-C already reaches torchrun through the process group.
        return Supervisor(rendered.argv, {**os.environ, **rendered.env}, forward_sigint=False,
                          run_dir=rendered.run_dir).start()

    def follow(self, gang: Supervisor) -> int:
        return gang.wait()
