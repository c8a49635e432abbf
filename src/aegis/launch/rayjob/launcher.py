"""The RayJob launcher: the shared Kubernetes lifecycle (``aegis.launch.kubernetes``) with its
renderer and validator, started by the Ray Tune sweeper (``launch_search``) instead of by
``train.py`` for each job: a RayJob carries a whole search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from aegis.errors import Problems
from aegis.launch.base import MOST_GPUS_PER_POD
from aegis.launch.kubernetes import KubernetesLauncher
from aegis.core.context import RunContext, override_key
from aegis.launch.rayjob.checks import check as own_rules
from aegis.launch.rayjob.render import render_rayjob
from aegis.launch.rayjob.validate import validate_rayjob


SWEEPER_PREFIX = "hydra.sweeper."


class RayJobLauncher(KubernetesLauncher):
    name = "rayjob"
    bounds = {**KubernetesLauncher.bounds, "workers": (10_000, "worker pods"), "head.resources.gpu": MOST_GPUS_PER_POD}
    search_runs = "a Ray cluster in Kubernetes"
    # k8s/rayjob-tune.yaml: for an image with the Ray this project pins (pyproject.toml), stated
    # rather than read from this machine, so the checked-in file does not follow its Ray.
    example_overrides = ("search=digits_mlp", "launcher.ray_version=2.60.0")
    example_file = "rayjob-tune.yaml"
    # The sweeper hands the search to this launcher rather than running it here.
    runs_search = True
    render_manifest = render_rayjob
    validate_manifest = validate_rayjob

    def check(self, cfg: DictConfig, found: Problems) -> None:
        super().check(cfg, found)
        own_rules(cfg, found)

    def spans_nodes(self, cfg: DictConfig) -> bool:
        """The head and the workers are scheduled apart: their claims must be ReadWriteMany."""
        return cfg.launcher.workers > 0

    def launch_search(self, config: DictConfig) -> int:
        """The search ``config`` (the sweeper's, ``hydra`` node included) as a RayJob: rendered,
        then printed (dry run) or submitted and followed, with the manifest and ``job.json`` in
        this machine's run dir for the search (``<root>/<task>/runs/<run_id>``), where ``aegis
        status/logs/cancel <run_id>`` find it."""
        ctx = context_of(config)
        return self.launch(config, ctx)


def context_of(config: DictConfig) -> RunContext:
    """The search's context; its overrides are the task's plus the sweeper's (``hydra.sweeper.*``:
    num_samples, scheduler, resources, params), which Hydra keeps apart in ``hydra.overrides.hydra``
    and the search in the cluster needs as much as the local one."""
    hydra: Any = config.hydra
    sweeper = [str(o) for o in hydra.overrides.hydra if override_key(str(o)).startswith(SWEEPER_PREFIX)]
    return RunContext(run_dir=Path(str(hydra.run.dir)).resolve(), run_id=str(config.run_id),
                      task_overrides=(*(str(o) for o in hydra.overrides.task), *sweeper),
                      config_name=str(hydra.job.config_name), multirun=True)
