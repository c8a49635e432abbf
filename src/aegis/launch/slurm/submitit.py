"""What ``hydra/launcher=submitit_slurm`` submits, and the rules it must follow.

Hydra's submitit launcher builds the sbatch script inside ``launch``, when it submits;
``render_sbatch`` builds the same script from the composed ``hydra.launcher`` node with
submitit's own code and no ``sbatch`` call, for dry runs and tests.
``check`` runs from validation: a DDP gang on SLURM hangs unless the tasks per node
equal the Trainer's devices, and GPUs must be asked for explicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from aegis.errors import ConfigError
from aegis.launch.local.checks import SUBMITIT_SLURM as SLURM_TARGET

GPU_ACCELERATORS = ("gpu", "cuda")


def render_sbatch(launcher: Mapping[str, Any], folder: Path) -> str:
    """The sbatch script for ``launcher`` (resolved ``hydra.launcher`` params), as submitit writes it.

    The executor is built exactly as hydra-submitit-launcher's ``launch`` builds it.
    """
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    params = {k: v for k, v in launcher.items() if k != "_target_"}
    init_keys = {"max_num_timeout", "submitit_folder"}
    executor = submitit.AutoExecutor(cluster="slurm", folder=str(folder),
                                     slurm_max_num_timeout=params.get("max_num_timeout", 0))
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items() if k not in init_keys})
    try:  # submitit has no public renderer (docs/internals.md); launches never come here
        inner = executor._executor
        return inner._make_submission_file_text(inner._submitit_command_str, "render")
    except Exception as exc:
        raise ConfigError(f"cannot render the sbatch script with this submitit ({submitit.__version__}): its "
                          f"private renderer changed ({type(exc).__name__}: {exc}); the launch itself is "
                          "unaffected.") from None


def check(config: DictConfig) -> None:
    launcher = config.get("hydra", {}).get("launcher") if "hydra" in config else None
    if launcher is None or launcher.get("_target_") != SLURM_TARGET:
        return
    strategy = config.strategy
    if strategy.name == "ddp":
        for key in ("devices", "num_nodes"):
            if strategy.get(key) is None:
                raise ConfigError(
                    f"strategy.{key} must be set with hydra/launcher=submitit_slurm and strategy=ddp: SLURM "
                    "starts one task per device (tasks_per_node = strategy.devices, nodes = strategy.num_nodes)."
                )
        if launcher.tasks_per_node != strategy.devices:
            raise ConfigError(
                f"hydra.launcher.tasks_per_node={launcher.tasks_per_node} must equal strategy.devices="
                f"{strategy.devices}: Lightning waits for one SLURM task per device."
            )
        if launcher.nodes != strategy.num_nodes:
            raise ConfigError(
                f"hydra.launcher.nodes={launcher.nodes} must equal strategy.num_nodes={strategy.num_nodes}."
            )
    timeout_min, delay_s = launcher.get("timeout_min"), launcher.get("signal_delay_s")
    if launcher.get("max_num_timeout") and timeout_min and delay_s and timeout_min * 60 <= delay_s:
        raise ConfigError(
            f"hydra.launcher.timeout_min={timeout_min} ends before the requeue signal hydra.launcher.signal_delay_s="
            f"{delay_s} is due: the job would requeue at once; expected timeout_min > {delay_s / 60:g}."
        )
    if str(config.trainer.accelerator) in GPU_ACCELERATORS and not (
        launcher.get("gpus_per_node") or launcher.get("gpus_per_task") or launcher.get("gres")
    ):
        raise ConfigError(
            f"trainer.accelerator={config.trainer.accelerator} on SLURM needs GPUs requested: set "
            "hydra.launcher.gpus_per_node (= strategy.devices for DDP)."
        )
