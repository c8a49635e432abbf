"""What only this machine can answer, for runs that train on it.

A GPU to train on, a checkpoint file to resume from, a ``paths.root`` that can hold run
dirs: facts of the machine (``aegis.config.host``), not of the config, so they are asked
only when the run trains here (a local launcher under Hydra's own launcher), never for
a run a cluster will start.
"""

from __future__ import annotations

import os
import sys

from omegaconf import DictConfig

from aegis.config import host, where
from aegis.errors import Problems

RESUME_KEYWORDS = ("auto", "never")


def _check_accelerator(cfg: DictConfig, found: Problems) -> None:
    accelerator = cfg.trainer.accelerator
    if accelerator in ("gpu", "cuda"):
        gpus = host.gpu_count()
        if gpus == 0:
            found.add(
                f"trainer.accelerator={accelerator} needs a GPU but this machine has none visible (no "
                "/dev/nvidia*, or CUDA_VISIBLE_DEVICES hides them): expected trainer.accelerator=auto or cpu here, "
                "or a cluster launcher with launcher.resources.gpu."
            )
            return
        processes = cfg.launcher.get("nproc_per_node", 1)  # a launcher that starts one process per GPU here
        if processes > gpus:
            found.add(
                f"launcher.nproc_per_node={processes} starts one process per GPU but this machine has {gpus}: "
                f"expected launcher.nproc_per_node <= {gpus}."
            )
    if accelerator == "mps" and not host.is_macos():
        found.add(
            f"trainer.accelerator=mps needs Apple silicon (macOS) but this is {sys.platform}: "
            "expected auto, cpu, or gpu on a machine with one."
        )
    if accelerator == "tpu" and not host.has_torch_xla():
        found.add(
            "trainer.accelerator=tpu needs torch_xla, which is not installed here: expected auto, cpu or gpu."
        )


def _check_resume(cfg: DictConfig, found: Problems) -> None:
    resume = cfg.resume
    if resume in RESUME_KEYWORDS:
        return
    problem = host.checkpoint_problem(resume)
    if problem:
        found.add(
            f"resume={resume} {problem}: expected 'auto' (continue from last.ckpt in the run dir), "
            "'never', or the path of an existing checkpoint (.ckpt) file."
        )


def _check_paths_root(cfg: DictConfig, found: Problems) -> None:
    root = cfg.paths.root
    blocker = host.blocking_file(root)
    if blocker is not None:
        blocked = "" if os.path.abspath(root) == blocker else f" ({blocker} is a file)"
        found.add(
            f"paths.root={root} cannot hold run dirs{blocked}: expected a directory, or a path that can be created."
        )
    elif (why := host.unwritable_root(root)) is not None:
        found.add(f"paths.root={root} {why}: expected a directory this user can create run dirs in.", "paths.root")


def check(cfg: DictConfig, found: Problems) -> None:
    """What only this machine can answer, for runs that train on it."""
    if not where.trains_here(cfg):
        return
    if not found.refused("trainer.accelerator", "launcher.nproc_per_node"):
        _check_accelerator(cfg, found)
    if not found.refused("resume"):
        _check_resume(cfg, found)
    if not found.refused("paths.root"):
        _check_paths_root(cfg, found)
