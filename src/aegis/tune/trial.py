"""One trial of a search: the same training as ``python train.py``, in a Ray worker.

The driver ships Hydra's config loader and the search's master config; the trial
composes its own config from the shared overrides plus its sampled values (so group
choices such as ``model=choice(mlp,cnn)`` compose for real), runs it as a Hydra job in
``<sweep dir>/<trial number>`` (``.hydra/``, ``train.log``, checkpoints, summary) and
trains in-process on one device, reporting every validation epoch to Ray Tune.
Re-running a trial (a resumed search) finds its ``last.ckpt`` and continues from it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import DictConfig

from aegis.errors import AegisError


class TrialFailed(AegisError):
    """A trial whose training did not complete."""


@dataclass
class TrialJob:
    """Everything a trial needs from the driver (pickled to the Ray worker)."""

    hydra_context: Any
    master_config: DictConfig
    space: Any  # aegis.tune.space.SearchSpace
    pinned: list[str] = field(default_factory=list)  # run_id, paths.root, hydra.sweep.dir
    parent_run_id: Optional[str] = None
    singleton_state: Any = None


def trial_number(trial_id: str) -> int:
    """Ray names trials ``<experiment hash>_<index>``; the index numbers the run dir."""
    tail = trial_id.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else abs(hash(trial_id)) % 10**6


def run_trial(params: dict[str, Any], job: TrialJob) -> None:
    """Ray Tune's function trainable for one trial."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.singleton import Singleton
    from hydra.core.utils import JobStatus, run_job, setup_globals
    from omegaconf import open_dict
    from ray import tune

    from aegis.config.resolvers import register_resolvers

    setup_globals()
    if job.singleton_state is not None:
        Singleton.set_state(job.singleton_state)
    register_resolvers()

    trial_id = tune.get_context().get_trial_id()
    overrides = job.space.trial_overrides(params) + job.pinned
    cfg = job.hydra_context.config_loader.load_sweep_config(job.master_config, overrides)
    with open_dict(cfg):
        cfg.hydra.job.id = trial_id
        cfg.hydra.job.num = trial_number(trial_id)
        if cfg.logger.name == "mlflow":
            # Trials are candidates, not models to ship: the reproduced best run registers.
            cfg.logger.register_model = False
            if job.parent_run_id:
                cfg.logger.tags = {**cfg.logger.tags, "mlflow.parentRunId": job.parent_run_id,
                                   "aegis.trial_id": trial_id}
    HydraConfig.instance().set_config(cfg)
    failure: list[Exception] = []

    def task(trial_cfg: DictConfig) -> int:
        # run_job keeps the task's exception in a private field; keeping it here raises it
        # unchanged, without reading that field or the extra stderr line of JobReturn.return_value.
        try:
            return _train(trial_cfg, trial_id=trial_id)
        except Exception as exc:
            failure.append(exc)
            raise

    result = run_job(
        hydra_context=job.hydra_context,
        task_function=task,
        config=cfg,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    if result.status == JobStatus.FAILED:
        if failure:
            raise failure[0]
        raise TrialFailed(f"trial {trial_id} failed ({os.getcwd()}).")
    if result.return_value != 0:
        raise TrialFailed(f"trial {trial_id} ended with exit code {result.return_value} ({os.getcwd()}).")


def _train(cfg: DictConfig, trial_id: str) -> int:
    from hydra.core.hydra_config import HydraConfig

    from aegis.config.validation import validate
    from aegis.launch.base import RunContext
    from aegis.training.run import train
    from aegis.tune.reporting import TuneReport

    validate(cfg)
    ctx = RunContext.from_hydra(cfg, HydraConfig.get())
    return train(cfg, ctx, callbacks=[TuneReport(trial_id)]).exit_code
