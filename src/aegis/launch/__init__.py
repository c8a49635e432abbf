"""Launchers: one module each, behind the small protocol in ``base``.

Modules are imported on demand so that choosing a launcher costs nothing for the
others (a cluster launcher never imports torch, the local one does when it trains).
"""

from __future__ import annotations

import importlib

from aegis.errors import ConfigError
from aegis.launch.base import Launcher

LAUNCHERS = {
    "local": "aegis.launch.local:LocalLauncher",
    "torchrun": "aegis.launch.torchrun:TorchrunLauncher",
    "k8s-job": "aegis.launch.k8s_job:K8sJobLauncher",
    "pytorchjob": "aegis.launch.pytorchjob:PyTorchJobLauncher",
}


def get_launcher(name: str) -> Launcher:
    if name not in LAUNCHERS:
        valid = ", ".join(sorted(LAUNCHERS))
        raise ConfigError(f"launcher.name={name!r} is not a known launcher: expected one of {valid}.")
    module_name, class_name = LAUNCHERS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)()
