"""Rules of ``launcher=local``: a DDP gang needs someone to start its processes."""

from __future__ import annotations

from omegaconf import DictConfig

from aegis.config import host
from aegis.config.where import STRATEGY_SHAPE, hydra_launcher_target
from aegis.errors import Problems

SUBMITIT_SLURM = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"


def check(cfg: DictConfig, found: Problems) -> None:
    strategy = cfg.strategy
    if strategy.name != "ddp" or found.refused("launcher", *STRATEGY_SHAPE) or host.in_torchrun_gang() or host.in_slurm_gang():
        return  # a rank that torchrun or SLURM started is one process of a gang already
    if hydra_launcher_target(cfg) == SUBMITIT_SLURM:
        return  # submitit starts one SLURM task per device (its own rules: aegis.launch.slurm.submitit)
    devices, nodes = strategy.get("devices"), strategy.get("num_nodes")
    if (devices or 1) > 1 or (nodes or 1) > 1:
        key, value = ("devices", devices) if (devices or 1) > 1 else ("num_nodes", nodes)
        flag = f"launcher.nproc_per_node={devices or 1}" + (f" launcher.nnodes={nodes}" if (nodes or 1) > 1 else "")
        found.add(
            f"strategy.{key}={value} needs one process per device, which launcher=local does not start: "
            f"expected launcher=torchrun {flag} (or start train.py with torchrun)."
        )
