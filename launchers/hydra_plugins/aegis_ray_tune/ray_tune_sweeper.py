"""The Ray Tune sweeper's config and a thin Sweeper class (``search=ray-tune`` selects it).

Hydra imports every public module of ``hydra_plugins`` to discover plugins, on every
``python train.py``; this one therefore imports only Hydra and OmegaConf. Ray, torch
and the search logic load in ``sweep`` (``_impl``), when a search actually runs. (No ``from __future__ import annotations``: Hydra
executes this module outside ``sys.modules`` and dataclasses then cannot read string
annotations.)
"""


from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class SchedulerConf:
    """``fifo`` runs every trial to the end; ``asha`` stops the worse ones early.

    ASHA compares trials at rungs of ``grace_period * reduction_factor**k`` epochs up to
    ``max_t`` (null: one past ``trainer.max_epochs``, so a trial that survives every rung
    ends on its own) and keeps the best ``1/reduction_factor``.
    """

    name: str = "fifo"
    grace_period: int = 1
    reduction_factor: float = 2.0
    max_t: Optional[int] = None


@dataclass
class ResourcesConf:
    """What one trial reserves. Each trial trains on one device: Lightning's ``ddp``
    re-launches ``sys.argv[0]``, which inside a Ray worker is Ray's own script."""

    cpu: float = 1.0
    gpu: float = 0.0


@dataclass
class RayTuneSweeperConf:
    _target_: str = "hydra_plugins.aegis_ray_tune.ray_tune_sweeper.RayTuneSweeper"
    # Trials to sample (with grid dimensions: samples of each grid point).
    num_samples: int = 8
    # A metric the training logs every validation epoch, and whether higher is better.
    metric: str = "val/acc"
    mode: str = "max"
    scheduler: SchedulerConf = field(default_factory=SchedulerConf)
    # random, or optuna (Ray Tune's OptunaSearch; needs the optuna package).
    search_alg: str = "random"
    # null: as many as the resources allow.
    max_concurrent_trials: Optional[int] = None
    resources: ResourcesConf = field(default_factory=ResourcesConf)
    # How many trials may crash before the search gives up (the rest keep running until then).
    max_failures: int = 0
    # null: a local Ray started in this process; "auto" or "ray://host:10001": a cluster.
    address: Optional[str] = None
    # CPUs of the local Ray (null: all of this machine's). Ignored with an address.
    num_cpus: Optional[int] = None
    # Seed of the search algorithm (the training seed is the config's `seed`).
    seed: Optional[int] = None
    # Continue an interrupted search in the same sweep dir (pin it with run_id=...).
    resume: bool = False
    # The search space: key -> override expression, e.g. model.lr: tag(log,interval(1e-4,1e-1)).
    params: Dict[str, Any] = field(default_factory=dict)
    # Write a PNG of every trial's metric per epoch into the sweep dir.
    plot: bool = True
    # Workers' logs and Ray's own messages on the terminal too (the logs are always in each
    # trial's train.log); the live table and the final table stay.
    verbose: bool = False


ConfigStore.instance().store(group="hydra/sweeper", name="ray_tune", node=RayTuneSweeperConf, provider="aegis")


class RayTuneSweeper(Sweeper):
    """Runs one Ray Tune search where Hydra would run a list of jobs.

    Why the trials do not go through Hydra's launcher API: ``Launcher.launch(job_overrides,
    initial_job_idx)`` takes a batch of whole jobs and returns their ``JobReturn``s when all
    of them have ended. A Ray Tune search needs what that interface has no channel for:
    each trial's metric every epoch (ASHA's rungs, the live table), stopping a running trial
    at a rung, starting the next trial as soon as a slot frees with a configuration the
    search algorithm (Optuna) chose from the results so far, and restoring half-finished
    trials on resume. So Ray Tune schedules the trials, and each one is still a Hydra job
    inside its Ray worker: composed by Hydra's config loader (``load_sweep_config``) and
    run by ``hydra.core.utils.run_job``, the function Hydra's own launchers call (job dir,
    ``.hydra/``, logging, callbacks). ``hydra/launcher`` and the ``launcher`` group
    therefore take no part in a search: anything but the local launcher is refused
    (``aegis.tune.checks``), and a search on a cluster runs against a Ray cluster there
    (``address``).
    """

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.hydra_context: Optional[HydraContext] = None
        self.task_function: Optional[TaskFunction] = None
        self.config: Optional[DictConfig] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.config = config

    def sweep(self, arguments: List[str]) -> Any:
        from hydra_plugins.aegis_ray_tune._impl import run_sweep

        return run_sweep(self, arguments)
