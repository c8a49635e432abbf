"""How a search fits the rest of the config, checked before anything is created.

``search=ray-tune`` (conf/search/ray-tune.yaml) selects the Ray Tune sweeper and turns
multirun on. The sweeper runs every trial itself, as a Ray Tune trainable in a Ray worker,
in-process, not through Hydra's launcher (why: ``hydra_plugins.aegis_ray_tune``). Three
combinations therefore cannot do what they say, and each is one sentence here rather
than a surprise later:

- a search in RUN mode (``hydra.mode=RUN``) would run the base config once and search
  nothing;
- a launcher other than ``local`` or ``rayjob`` would never be used: a trial cannot become
  a torchrun gang (Lightning's ddp re-launches ``sys.argv[0]``, which in a Ray worker is
  Ray's own script) nor a Kubernetes job; a search on Kubernetes is the launcher
  ``registry.SEARCH_ON_KUBERNETES`` names (the whole search as a KubeRay RayJob), or runs against a Ray cluster there through
  ``hydra.sweeper.address``;
- a Hydra launcher (``hydra/launcher=submitit_slurm``, ``ray``) would be ignored the same way;
- several devices per trial need a process per device, which one worker cannot start.

The sweeper's own keys are checked here too, in the same pass (``_check_sweeper``):
every bad value (``aegis.tune.settings``), a metric the model never logs (its
``LOGGED_METRICS``, read without importing it: ``aegis.config.metrics``), a mode that
would pick the worst trial, an ASHA rung no trial reaches, and a trial that asks the
local Ray for more CPUs or GPUs than it has (it would wait forever). Each would
otherwise surface a minute later, from inside Ray, after the sweep dir and the tracking
run exist.

Pure: reads the composed config and the ``hydra`` node, imports nothing heavy.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from aegis.core.registry import SEARCH_ON_KUBERNETES
from aegis.errors import Problems

RAY_TUNE_SWEEPER = "hydra_plugins.aegis_ray_tune.ray_tune_sweeper.RayTuneSweeper"
# Hydra's own launcher, the one a sweep uses unless hydra/launcher says otherwise.
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
# What a search on a cluster does instead of a cluster launcher.
ON_A_CLUSTER = (f"to search on Kubernetes, use launcher={SEARCH_ON_KUBERNETES} (the search as a KubeRay RayJob), or "
                "point the search at a Ray cluster with hydra.sweeper.address=ray://<head>:10001")


def _mode(hydra: Any) -> Optional[str]:
    mode = hydra.get("mode")
    return getattr(mode, "name", None if mode is None else str(mode))


def _choice(hydra: Any, group: str) -> Optional[str]:
    choices = (hydra.get("runtime") or {}).get("choices") or {}
    return choices.get(group)


def check_search(cfg: Any, hydra: Any, found: Optional[Problems] = None) -> list[str]:
    """The sentences (added to ``found`` too) of what keeps ``cfg``'s search from running as composed.

    ``hydra`` is the config's ``hydra`` node (None when composed without one: nothing to
    check). A search is recognised by the group that chose it (``search=...``) and by the
    sweeper it runs on, so ``-m hydra/sweeper=ray_tune`` follows the same rules.
    """
    found = Problems() if found is None else found
    before = len(found.sentences)
    _check(cfg, hydra, found)
    if _is_search(hydra):
        _check_sweeper(cfg, hydra, found)
    return found.sentences[before:]


def _is_search(hydra: Any) -> bool:
    """The Ray Tune sweeper will run: a multirun on it."""
    return hydra is not None and _mode(hydra) == "MULTIRUN" and \
        (hydra.get("sweeper") or {}).get("_target_") == RAY_TUNE_SWEEPER


def _check(cfg: Any, hydra: Any, found: Problems) -> None:
    if hydra is None:
        return
    search = _choice(hydra, "search")
    mode = _mode(hydra)
    if search is not None and mode == "RUN":
        found.add(
            f"search={search} runs as a multirun (it turns multirun on itself) but hydra.mode=RUN asks for a single "
            f"run: drop hydra.mode=RUN, or drop search={search} to train one config.", "hydra.mode"
        )
        return  # a single run: the sweeper's rules below do not apply
    if mode != "MULTIRUN" or (hydra.get("sweeper") or {}).get("_target_") != RAY_TUNE_SWEEPER:
        return
    spelled = f"search={search}" if search is not None else "hydra/sweeper=ray_tune"
    launcher = cfg.launcher.name
    from aegis.core.registry import search_launchers

    hosts = search_launchers()  # here (local), or handed whole to a cluster that runs it (rayjob)
    if launcher not in hosts:
        with_ = " or ".join(f"launcher={name} ({where})" for name, where in hosts.items())
        found.add(
            f"{spelled} trains each trial in-process in a Ray worker, so it runs with {with_}, not "
            f"launcher={launcher}: drop launcher={launcher}; {ON_A_CLUSTER}.", "launcher"  # and its own rules
        )
    hydra_launcher = (hydra.get("launcher") or {}).get("_target_")
    if hydra_launcher not in (None, BASIC_LAUNCHER):
        name = _choice(hydra, "hydra/launcher") or hydra_launcher
        found.add(
            f"{spelled} runs its trials on Ray Tune itself, never through hydra/launcher={name}: drop "
            f"hydra/launcher={name}; {ON_A_CLUSTER}.", "hydra.launcher"
        )
    strategy = cfg.strategy
    for key in ("devices", "num_nodes"):
        value = strategy.get(key)
        if isinstance(value, int) and value > 1:
            found.add(
                f"strategy.{key}={value} needs one process per device, which a trial of {spelled} (one Ray "
                f"worker) cannot start: expected one device per trial (strategy.{key}=1 or null; "
                "hydra.sweeper.resources.gpu=1 gives each trial a GPU).", f"strategy.{key}"
            )


# Metric names whose direction is not a matter of taste: searching them the other way finds the worst trial.
_DIRECTION = {"loss": "min", "acc": "max"}


def _check_sweeper(cfg: Any, hydra: Any, found: Problems) -> None:
    """``hydra.sweeper.*`` against itself and against the config the trials will train."""
    from aegis.config import host
    from aegis.core.registry import get_launcher, search_launchers
    from aegis.config.metrics import not_logged
    from aegis.tune import settings

    s = settings.read(hydra.sweeper)
    settings.problems(s, found)
    if not found.refused("hydra.sweeper.metric"):
        sentence = not_logged(cfg.model, "hydra.sweeper.metric", s.metric)
        if sentence is not None:
            found.add(sentence, "hydra.sweeper.metric")
    leaf = str(s.metric).rpartition("/")[2]
    if not found.refused("hydra.sweeper.metric", "hydra.sweeper.mode") and _DIRECTION.get(leaf, s.mode) != s.mode:
        found.add(f"hydra.sweeper.mode={s.mode} with hydra.sweeper.metric={s.metric} would pick the trial with the "
                  f"{'highest loss' if leaf == 'loss' else 'lowest accuracy'}: expected hydra.sweeper.mode="
                  f"{_DIRECTION[leaf]}.", "hydra.sweeper.mode")
    max_epochs = cfg.trainer.get("max_epochs")
    if s.scheduler == "asha" and isinstance(max_epochs, int) and not found.refused(
            "hydra.sweeper.scheduler", "trainer.max_epochs"):
        if s.grace_period > max_epochs:
            found.add(f"hydra.sweeper.scheduler.grace_period={s.grace_period} is beyond trainer.max_epochs="
                      f"{max_epochs}: ASHA's first rung would come after every trial ended, so it would stop "
                      f"none: expected at most {max_epochs}, or scheduler.name=fifo.",
                      "hydra.sweeper.scheduler.grace_period")
    # The local Ray only: an address, or a launcher that hands the search to a cluster (rayjob:
    # the search runs on the cluster's Ray), has its own nodes.
    local_ray = s.address is None and cfg.launcher.get("name") in search_launchers() and \
        get_launcher(cfg.launcher.name).trains_here
    if local_ray and not found.refused("hydra.sweeper.resources", "hydra.sweeper.num_cpus"):
        cpus = s.num_cpus or os.cpu_count() or 1
        where = f"hydra.sweeper.num_cpus={s.num_cpus}" if s.num_cpus else f"this machine's {cpus}"
        if s.cpu > cpus:
            found.add(f"hydra.sweeper.resources.cpu={s.cpu:g} is more CPUs than the local Ray has ({where}), so no "
                      f"trial could ever start: expected at most {cpus}.", "hydra.sweeper.resources.cpu")
        if s.gpu > 0 and s.gpu > host.gpu_count():
            found.add(f"hydra.sweeper.resources.gpu={s.gpu:g} is more GPUs than this machine has "
                      f"({host.gpu_count()}), so no trial could ever start: expected at most {host.gpu_count()}, or "
                      "hydra.sweeper.address=<a Ray cluster with GPUs>.", "hydra.sweeper.resources.gpu")
    accelerator = str(cfg.trainer.get("accelerator"))
    if accelerator in ("gpu", "cuda") and s.gpu == 0 and not found.refused("hydra.sweeper.resources.gpu",
                                                                           "trainer.accelerator"):
        found.add(f"trainer.accelerator={accelerator} in a search needs a GPU per trial, but "
                  "hydra.sweeper.resources.gpu=0 gives a trial none (Ray hides every GPU from it): expected "
                  "hydra.sweeper.resources.gpu=1, or trainer.accelerator=cpu.", "hydra.sweeper.resources.gpu")
