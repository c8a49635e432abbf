"""``launcher=torchrun``: a DDP gang on this machine (or on several, by hand).

The parent never imports torch: it renders a ``torchrun`` command that re-enters the
same entrypoint with the user's overrides, ``launcher=local`` and the run dir pinned,
runs it, forwards SIGTERM (so a preempted gang checkpoints) and returns the gang's exit
code.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys

from omegaconf import DictConfig

from aegis.launch.base import Launcher, ProcessPlan, RunContext

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


class TorchrunLauncher(Launcher[ProcessPlan, subprocess.Popen]):
    name = "torchrun"

    def render(self, cfg: DictConfig, ctx: RunContext) -> ProcessPlan:
        argv = [sys.executable, "-m", "torch.distributed.run", *torchrun_flags(cfg.launcher)]
        argv += [ctx.entrypoint, *hydra_flags(ctx), *ctx.child_overrides(launcher="local")]
        env = {}
        if "OMP_NUM_THREADS" not in os.environ:
            env["OMP_NUM_THREADS"] = str(threads_per_process(cfg.launcher.nproc_per_node))
        world = cfg.launcher.nproc_per_node * cfg.launcher.nnodes
        return ProcessPlan(argv, env, f"torchrun gang of {world} processes in {ctx.run_dir}")

    def submit(self, rendered: ProcessPlan) -> subprocess.Popen:
        log.info("Launching %s", rendered.description)
        log.info("Command: %s", rendered.shell())
        return subprocess.Popen(rendered.argv, env={**os.environ, **rendered.env})

    def follow(self, handle: subprocess.Popen) -> int:
        def forward(signum: int, _frame: object) -> None:
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
        return 128 - code if code < 0 else code
