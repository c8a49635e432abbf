"""One trial of a search: the same training as ``python train.py``, in a Ray worker.

The driver ships Hydra's config loader and the search's master config; the trial
composes its own config from the shared overrides plus its sampled values (so group
choices such as ``model=choice(mlp,cnn)`` compose for real), runs it as a Hydra job in
``<sweep dir>/<trial number>`` (``.hydra/``, ``train.log``, checkpoints, summary) and
trains in-process on one device, reporting every validation epoch to Ray Tune.
Re-running a trial (a resumed search) finds its ``last.ckpt`` and continues from it.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

from omegaconf import DictConfig

from aegis.core import logger_kind
from aegis.errors import AegisError
from aegis.tune.layout import TRIAL_FILE, TRIAL_KEY, ray_experiment_dir, trial_number


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
    # What reruns a trial as a single run (its MLflow run's aegis.reproduce, as in best.yaml):
    # the driver's entrypoint (the worker's own is Ray's default_worker.py) and the overrides
    # that unselect a search an experiment file selects (aegis.tune.results.search_unselect).
    entrypoint: str = "train.py"
    unselect: list[str] = field(default_factory=list)



def sampled(config: Any) -> dict[str, Any]:
    """A trial's sampled values (list choices decoded), without the number the driver added."""
    from aegis.tune.space import decoded

    return {k: v for k, v in decoded(config).items() if k != TRIAL_KEY}


def claim_run_dir(run_dir: Any, trial_id: str) -> None:
    """Mark ``run_dir`` as this trial's; a dir left by another trial moves aside.

    After a kill -9 of the driver, Ray Tune may have lost a trial that had just started
    (its experiment state is saved every few seconds): the resumed search gives that
    number to a new trial with other values, which must not continue the old checkpoint.
    """
    from aegis.core.files import read_json, write_json

    run_dir = Path(run_dir)
    owner = read_json(run_dir / TRIAL_FILE)
    if run_dir.exists() and owner is not None and owner.get("trial_id") != trial_id:
        aside = run_dir.with_name(f"{run_dir.name}.lost-{owner.get('trial_id')}")
        run_dir.rename(aside)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / TRIAL_FILE, {"trial_id": trial_id, "number": int(run_dir.name)})


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
    number = trial_number(params)
    if number is None:
        raise TrialFailed(f"trial {trial_id} has no number ({TRIAL_KEY}): the search's scheduler must be "
                          "aegis.tune.numbering's.")
    overrides = job.space.trial_overrides(sampled(params)) + job.pinned
    cfg = job.hydra_context.config_loader.load_sweep_config(job.master_config, overrides)
    with open_dict(cfg):
        cfg.hydra.job.id = trial_id
        cfg.hydra.job.num = number
        if logger_kind.of(cfg.logger).mlflow:
            # Trials are candidates, not models to ship: the reproduced best run registers.
            cfg.logger.register_model = False
            if job.parent_run_id:
                cfg.logger.tags = {**cfg.logger.tags, "mlflow.parentRunId": job.parent_run_id,
                                   "aegis.trial_id": trial_id, "aegis.trial_number": str(number)}
    HydraConfig.instance().set_config(cfg)
    run_dir = Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
    claim_run_dir(run_dir, trial_id)
    from aegis.tune.reporting import last_recorded_epoch, resume_point

    # Ray's record of this trial (progress.csv) is in its dir under the sweep dir's Ray
    # experiment, named <trainable>_<trial id>_...: not the worker's get_trial_dir(), which is
    # a working dir in Ray's session.
    ray_dirs = list(ray_experiment_dir(Path(str(cfg.hydra.sweep.dir))).glob(f"*_{trial_id}_*"))
    recorded = last_recorded_epoch(str(ray_dirs[0])) if len(ray_dirs) == 1 else None
    start = resume_point(tune.get_checkpoint(), run_dir, recorded)
    if start is not None:
        with open_dict(cfg):
            cfg.resume = str(start)
    failure: list[Exception] = []

    def task(trial_cfg: DictConfig) -> int:
        # run_job keeps the task's exception in a private field; keeping it here raises it
        # unchanged, without reading that field or the extra stderr line of JobReturn.return_value.
        try:
            return _train(trial_cfg, trial_id=trial_id)
        except Exception as exc:
            failure.append(exc)
            # Into the trial's own train.log (Hydra's job logging), where its record points.
            logging.getLogger("aegis.tune").error("Trial %s failed", trial_id, exc_info=True)
            raise

    with _launched_as(job, params, cfg):
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
        # A failure the run explained (a NaN loss, a full disk): its sentence is in summary.json.
        from aegis.core.files import read_json

        record = read_json(Path(os.getcwd()) / "summary.json") or {}
        raise TrialFailed(record.get("cause") or f"trial {trial_id} ended with exit code {result.return_value}")


@contextmanager
def _launched_as(job: TrialJob, params: dict[str, Any], cfg: DictConfig) -> Iterator[None]:
    """The trial's lineage names the single run that reruns it (``python train.py <its values>``,
    the command best.yaml gives), not the Ray worker it ran in (``python default_worker.py
    search=ray-tune ...``, which would start a search): ``$AEGIS_LAUNCH`` while it trains, put
    back afterwards for the next trial in this worker."""
    from aegis.training.lineage import LAUNCH_ENV, LaunchOrigin
    from aegis.tune.results import reproduce_overrides

    overrides = reproduce_overrides(job.space, sampled(params), job.unselect)
    config_name = str(cfg.hydra.job.get("config_name") or "train")
    origin = LaunchOrigin(str(cfg.launcher.name), tuple(overrides), job.entrypoint, config_name)
    before = os.environ.get(LAUNCH_ENV)
    os.environ[LAUNCH_ENV] = origin.as_env()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(LAUNCH_ENV, None)
        else:
            os.environ[LAUNCH_ENV] = before


def _train(cfg: DictConfig, trial_id: str) -> int:
    from hydra.core.hydra_config import HydraConfig

    from aegis.config.validation import validate
    from aegis.core.context import RunContext
    from aegis.training.run import train
    from aegis.tune.reporting import TuneReport

    validate(cfg)
    ctx = RunContext.from_hydra(cfg, HydraConfig.get())
    return train(cfg, ctx, callbacks=[TuneReport(trial_id, ctx.run_dir)]).exit_code
