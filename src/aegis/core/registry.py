"""The table of launchers: one line each, loaded by name on demand.

``LAUNCHERS`` is the only place that names the launchers; shared code (config
validation, the Kubernetes client's kinds, ``aegis status``, the search's checks)
reaches a launcher through this table and the ``Launcher`` protocol, never by importing
a launcher's module. Entries are import paths loaded with ``importlib`` when asked
for, so the table sits in the lowest layer (it imports nothing of Aegis but the error
type) while the launchers it names sit at the top: lower layers depend on the protocol,
the launchers plug in. Choosing a launcher costs nothing for the others (a cluster
launcher never imports torch; the local one does when it trains). Adding a launcher:
docs/launchers.md. A launcher kept outside this package (a plugin, a test's toy) registers
itself without editing this file: an ``aegis.launchers`` entry point or the
``AEGIS_LAUNCHERS`` variable (``name=module:Class``, comma-separated), read at import.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any, Optional

from aegis.errors import ConfigError


@dataclass(frozen=True)
class Registered:
    launcher: str  # "module:Class" of the Launcher
    # "module:Class" of its config dataclass (the YAML option extends <name>_schema); None for a
    # plugin that brings no config option (it is reached by ``aegis status/logs/cancel`` only).
    schema: Optional[str] = None
    kind: Optional[str] = None  # "module:NAME" of the Kubernetes kind it submits, if any
    # "module:function" of the rules for a Hydra launcher this launcher's platform also
    # provides (hydra/launcher=submitit_slurm runs a multirun's jobs on SLURM, each with the
    # in-process launcher): called as function(cfg) by validation, raising ConfigError.
    hydra_launcher_rules: Optional[str] = None


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
    "slurm": Registered("aegis.launch.slurm.launcher:SlurmLauncher", "aegis.launch.slurm.schema:SlurmLauncherConfig",
                        hydra_launcher_rules="aegis.launch.slurm.submitit:check"),
    "rayjob": Registered("aegis.launch.rayjob.launcher:RayJobLauncher",
                         "aegis.launch.rayjob.schema:RayJobLauncherConfig", kind="aegis.launch.rayjob.kind:RAYJOB"),
}

# The search's rules (how search=... fits the launcher, the mode, the sweeper's keys), loaded
# by path like the launchers: aegis.tune sits beside the launchers, above the config pass
# that runs them first (``check_search(cfg, hydra, found)``).
SEARCH_RULES = "aegis.tune.checks:check_search"

# The launcher a run's ranks re-enter with wherever another launcher placed them (a pod, a
# search trial's child, a SLURM task): it trains in the process it is started in. Also how a
# run dir without job.json (a search trial, an older run) is read: a process that has ended.
IN_PROCESS = "local"

# The launchers a sentence elsewhere points the user to, named here so that it names none:
# a process per device on this machine (strategy=ddp past one device), and a search on
# Kubernetes (its trials as one KubeRay RayJob).
GANG_ON_THIS_MACHINE = "torchrun"
SEARCH_ON_KUBERNETES = "rayjob"

PLUGINS_ENV = "AEGIS_LAUNCHERS"  # name=module:Class[,name=module:Class...]
PLUGIN_GROUP = "aegis.launchers"  # entry points: name = "module:Class"


def register(name: str, launcher: str, schema: Optional[str] = None, kind: Optional[str] = None) -> None:
    """Add a launcher kept outside this file (a plugin, a test's toy): ``launcher`` is its
    "module:Class". A name already in the table is refused: a plugin never replaces a launcher."""
    if name in LAUNCHERS and LAUNCHERS[name].launcher != launcher:
        raise ConfigError(f"launcher {name!r} is already registered ({LAUNCHERS[name].launcher}); "
                          f"a plugin launcher needs a name of its own.")
    if ":" not in launcher:
        raise ConfigError(f"launcher {name!r}: {launcher!r} is not a \"module:Class\" path.")
    LAUNCHERS[name] = Registered(launcher, schema, kind)


def _register_plugins() -> None:
    """Entry points of the ``aegis.launchers`` group, then ``AEGIS_LAUNCHERS``. This runs at
    import, where an exception would be a traceback in every command: a malformed entry is one
    warning line on stderr and is left out (``launcher.name`` then says which names exist)."""
    import sys
    from importlib.metadata import entry_points

    found = [(point.name, point.value) for point in entry_points(group=PLUGIN_GROUP)]
    for item in filter(None, (part.strip() for part in os.environ.get(PLUGINS_ENV, "").split(","))):
        name, _, path = item.partition("=")
        found.append((name.strip(), path.strip()))
    for name, path in found:
        try:
            if not name:
                raise ConfigError(f"{PLUGINS_ENV}: {path!r} has no name: expected name=module:Class.")
            register(name, path)
        except ConfigError as exc:
            print(f"Warning: {exc} It is left out.", file=sys.stderr)


_register_plugins()


def _load(path: str) -> Any:
    module_name, attribute = path.split(":")
    return getattr(importlib.import_module(module_name), attribute)


def get_launcher(name: str) -> Any:
    """The launcher named ``name`` (an ``aegis.launch.base.Launcher``), loaded now."""
    if name not in LAUNCHERS:
        valid = ", ".join(sorted(LAUNCHERS))
        raise ConfigError(f"launcher.name={name!r} is not a known launcher: expected one of {valid}.")
    return _load(LAUNCHERS[name].launcher)()


def search_rules() -> Any:
    """The search's rules (``SEARCH_RULES``), loaded now."""
    return _load(SEARCH_RULES)


def hydra_launcher_rules() -> list[Any]:
    """Every launcher's rules for the Hydra launchers its platform provides, loaded now (only
    those modules: no launcher is imported for them)."""
    return [_load(entry.hydra_launcher_rules) for entry in LAUNCHERS.values() if entry.hydra_launcher_rules]


def search_launchers() -> dict[str, str]:
    """Launchers a search runs with, and where it then runs (``Launcher.search_runs``)."""
    found = {name: get_launcher(name).search_runs for name in LAUNCHERS}
    return {name: where for name, where in found.items() if where}


def schemas() -> list[tuple[str, type]]:
    """(ConfigStore option name, dataclass) of every launcher: ``k8s-job`` -> ``k8s_job_schema``."""
    return [(f"{name.replace('-', '_')}_schema", _load(entry.schema)) for name, entry in LAUNCHERS.items()
            if entry.schema]


def kinds() -> dict[str, Any]:
    """Every Kubernetes kind a launcher submits (an ``aegis.k8s.kinds.Kind``), by the object's ``kind``."""
    found = [_load(entry.kind) for entry in LAUNCHERS.values() if entry.kind]
    return {kind.name: kind for kind in found}
