"""The shape of the process gang, from the strategy config and torchrun's environment.

Under torchrun (or a PyTorchJob, whose operator drives torchrun through ``PET_*``),
Lightning picks ``TorchElasticEnvironment`` and requires ``devices`` and ``num_nodes`` to
match the gang; Aegis reads them from the environment so the config need not repeat
them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from omegaconf import DictConfig

from aegis.core.registry import GANG_ON_THIS_MACHINE
from aegis.errors import ConfigError


@dataclass(frozen=True)
class Topology:
    devices: int
    num_nodes: int
    strategy: Any
    plugins: tuple = field(default=())


def _gang_env() -> tuple[int, int] | None:
    """(processes on this node, processes in all) when torchrun started this process."""
    if "TORCHELASTIC_RUN_ID" not in os.environ or "LOCAL_WORLD_SIZE" not in os.environ:
        return None
    return int(os.environ["LOCAL_WORLD_SIZE"]), int(os.environ["WORLD_SIZE"])


def _slurm_gang() -> tuple[int, int] | None:
    """(tasks on this node, nodes) when SLURM started this process as one of several tasks
    (the SLURM launcher, ``hydra/launcher=submitit_slurm``: one task per device, Lightning's SLURMEnvironment)."""
    if not _in_slurm_job() or int(os.environ.get("SLURM_NTASKS", "1") or 1) <= 1:
        return None
    per_node = os.environ.get("SLURM_NTASKS_PER_NODE", "").split("(")[0]
    nodes = int(os.environ.get("SLURM_NNODES", "1") or 1)
    tasks = int(per_node) if per_node.isdigit() else int(os.environ["SLURM_NTASKS"]) // nodes
    return tasks, nodes


def _in_slurm_job() -> bool:
    """SLURM started this process as a task of a batch job (Lightning would pick SLURMEnvironment)."""
    return ("SLURM_NTASKS" in os.environ and "TORCHELASTIC_RUN_ID" not in os.environ
            and os.environ.get("SLURM_JOB_NAME") not in ("bash", "interactive"))


def _slurm_plugins() -> tuple:
    """One policy for Lightning's own SLURM requeue (SIGUSR1 -> hpc_ckpt_N.ckpt + scontrol
    requeue): off, for every task count. Requeueing is the job's supervisor's
    (aegis.launch.slurm.batch) or submitit's, and it resumes from last.ckpt."""
    if not _in_slurm_job():
        return ()
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    return (SLURMEnvironment(auto_requeue=False),)


def resolve_topology(strategy_cfg: DictConfig) -> Topology:
    if strategy_cfg.name == "single":
        return Topology(devices=1, num_nodes=1, strategy="auto", plugins=_slurm_plugins())
    if strategy_cfg.name != "ddp":
        raise ConfigError(f"strategy.name={strategy_cfg.name!r} is not known: expected 'single' or 'ddp'.")

    from lightning.pytorch.strategies import DDPStrategy

    gang = _gang_env()
    slurm = _slurm_gang()
    plugins: tuple = ()
    if slurm is not None:
        devices = strategy_cfg.devices or slurm[0]
        num_nodes = strategy_cfg.num_nodes or slurm[1]
        plugins = _slurm_plugins()
    elif gang is None:
        devices = strategy_cfg.devices or 1
        num_nodes = strategy_cfg.num_nodes or 1
        if devices * num_nodes > 1:
            raise ConfigError(
                f"strategy=ddp with strategy.devices={devices} and strategy.num_nodes={num_nodes} needs a "
                f"process per device: add launcher={GANG_ON_THIS_MACHINE} (or start train.py with torchrun)."
            )
    else:
        local_world, world = gang
        devices = strategy_cfg.devices or local_world
        num_nodes = strategy_cfg.num_nodes or max(1, world // local_world)
        if devices * num_nodes != world:
            raise ConfigError(
                f"strategy.devices={devices} x strategy.num_nodes={num_nodes} does not match torchrun's "
                f"{world} processes ({local_world} per node): leave both null to follow torchrun."
            )
    strategy = DDPStrategy(
        process_group_backend=strategy_cfg.process_group_backend,
        find_unused_parameters=strategy_cfg.find_unused_parameters,
        timeout=timedelta(seconds=strategy_cfg.timeout_s),
    )
    return Topology(devices=devices, num_nodes=num_nodes, strategy=strategy, plugins=plugins)
