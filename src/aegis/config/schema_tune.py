"""Schema of ``launcher=ray-tune``: the launcher node only names the mode.

The search itself is configured under ``hydra.sweeper`` (the Aegis Ray Tune sweeper's
keys, see ``hydra_plugins.aegis_ray_tune``), because Hydra hands the sweep to a Sweeper
plugin before any launcher is chosen; selecting ``launcher=ray-tune`` turns that sweeper
and multirun mode on (conf/launcher/ray-tune.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from aegis.config.schema import LauncherConfig


@dataclass
class RayTuneLauncherConfig(LauncherConfig):
    name: str = "ray-tune"


TUNE_SCHEMAS: list[tuple[Optional[str], str, type]] = [
    ("launcher", "ray_tune_schema", RayTuneLauncherConfig),
]
