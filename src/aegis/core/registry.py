"""The table of launchers: one line each, loaded by name on demand.

``LAUNCHERS`` is the only place that names the launchers; shared code (config
validation, the Kubernetes client's kinds, ``aegis status``, the search's checks)
reaches a launcher through this table and the ``Launcher`` protocol, never by importing
a launcher's module. Entries are import paths loaded with ``importlib`` when asked
for, so the table sits in the lowest layer (it imports nothing of Aegis but the error
type) while the launchers it names sit at the top: lower layers depend on the protocol,
the launchers plug in. Choosing a launcher costs nothing for the others (a cluster
launcher never imports torch; the local one does when it trains). Adding a launcher:
docs/launchers.md.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Optional

from aegis.errors import ConfigError


@dataclass(frozen=True)
class Registered:
    launcher: str  # "module:Class" of the Launcher
    schema: str  # "module:Class" of its config dataclass (the YAML option extends <name>_schema)
    kind: Optional[str] = None  # "module:NAME" of the Kubernetes kind it submits, if any


LAUNCHERS: dict[str, Registered] = {
    "local": Registered("aegis.launch.local.launcher:LocalLauncher", "aegis.launch.local.schema:LocalLauncherConfig"),
    "torchrun": Registered("aegis.launch.torchrun.launcher:TorchrunLauncher",
                           "aegis.launch.torchrun.schema:TorchrunLauncherConfig"),
    "k8s-job": Registered("aegis.launch.k8s_job.launcher:K8sJobLauncher",
                          "aegis.launch.k8s_job.schema:K8sJobLauncherConfig", kind="aegis.launch.k8s_job.kind:JOB"),
    "pytorchjob": Registered("aegis.launch.pytorchjob.launcher:PyTorchJobLauncher",
                             "aegis.launch.pytorchjob.schema:PyTorchJobLauncherConfig",
                             kind="aegis.launch.pytorchjob.kind:PYTORCHJOB"),
    "trainjob": Registered("aegis.launch.trainjob.launcher:TrainJobLauncher",
                           "aegis.launch.trainjob.schema:TrainJobLauncherConfig",
                           kind="aegis.launch.trainjob.kind:TRAINJOB"),
    "slurm": Registered("aegis.launch.slurm.launcher:SlurmLauncher", "aegis.launch.slurm.schema:SlurmLauncherConfig"),
    "rayjob": Registered("aegis.launch.rayjob.launcher:RayJobLauncher",
                         "aegis.launch.rayjob.schema:RayJobLauncherConfig", kind="aegis.launch.rayjob.kind:RAYJOB"),
}


def _load(path: str) -> Any:
    module_name, attribute = path.split(":")
    return getattr(importlib.import_module(module_name), attribute)


def get_launcher(name: str) -> Any:
    """The launcher named ``name`` (an ``aegis.launch.base.Launcher``), loaded now."""
    if name not in LAUNCHERS:
        valid = ", ".join(sorted(LAUNCHERS))
        raise ConfigError(f"launcher.name={name!r} is not a known launcher: expected one of {valid}.")
    return _load(LAUNCHERS[name].launcher)()


def search_launchers() -> dict[str, str]:
    """Launchers a search runs with, and where it then runs (``Launcher.search_runs``)."""
    found = {name: get_launcher(name).search_runs for name in LAUNCHERS}
    return {name: where for name, where in found.items() if where}


def schemas() -> list[tuple[str, type]]:
    """(ConfigStore option name, dataclass) of every launcher: ``k8s-job`` -> ``k8s_job_schema``."""
    return [(f"{name.replace('-', '_')}_schema", _load(entry.schema)) for name, entry in LAUNCHERS.items()]


def kinds() -> dict[str, Any]:
    """Every Kubernetes kind a launcher submits (an ``aegis.k8s.kinds.Kind``), by the object's ``kind``."""
    found = [_load(entry.kind) for entry in LAUNCHERS.values() if entry.kind]
    return {kind.name: kind for kind in found}
