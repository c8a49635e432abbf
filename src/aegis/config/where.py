"""Where a config's jobs run: its ``hydra`` node, Hydra's launcher, the Aegis launcher it names.

Several rule areas (this machine, tracking, components, data sources) and the launchers'
own checks ask these same questions. They live here, apart from the rules and from the
validation pass, so a launcher's checks can ask them without importing either.
"""

from __future__ import annotations

from typing import Any, Optional

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from aegis.errors import Problems

# Launchers whose training runs on this machine, in this process or its children.
# Hydra's own launcher: jobs run here. Others (submitit, ray) run them elsewhere.
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
# The strategy's share of a gang's shape: a launcher's gang rules skip once one of these (or
# one of the launcher's own shape keys) was refused.
STRATEGY_SHAPE = ("strategy.devices", "strategy.num_nodes")


def hydra_launcher_target(cfg: DictConfig) -> Optional[str]:
    """The ``_target_`` of the Hydra launcher that starts this run's jobs (submitit, ray, basic)."""
    if "hydra" in cfg:
        return cfg.hydra.launcher.get("_target_")
    if HydraConfig.initialized():
        return HydraConfig.get().launcher.get("_target_")
    return None


def hydra_node(cfg: DictConfig) -> Optional[DictConfig]:
    """The ``hydra`` node of ``cfg``: its own, or Hydra's current one for a job's config."""
    if "hydra" in cfg:
        return cfg.hydra
    return HydraConfig.get() if HydraConfig.initialized() else None


def trains_here(cfg: DictConfig) -> bool:
    """The run trains on this machine: a local launcher, started by Hydra's own launcher."""
    return launcher(cfg).trains_here and hydra_launcher_target(cfg) in (None, BASIC_LAUNCHER)


class UnknownLauncher:
    """A ``launcher.name`` no registered launcher has: one sentence, and no launcher rules."""

    trains_here = True

    def __init__(self, name: str) -> None:
        self.name = name

    def check_unresolved(self, cfg: DictConfig, found: Problems) -> None:
        from aegis.core.registry import LAUNCHERS

        found.add(f"launcher.name={self.name!r} is not a known launcher: expected one of "
                  f"{', '.join(sorted(LAUNCHERS))}.", "launcher.name")

    def check(self, cfg: DictConfig, found: Problems) -> None:
        pass


def launcher(cfg: DictConfig) -> Any:
    """The launcher ``cfg`` names, through the registry (its module only: nothing trains here)."""
    from aegis.core.registry import LAUNCHERS, get_launcher

    name = cfg.launcher.name
    return get_launcher(name) if name in LAUNCHERS else UnknownLauncher(name)
