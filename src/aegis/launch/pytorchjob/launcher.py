"""The PyTorchJob launcher: the shared Kubernetes lifecycle (``aegis.launch.kubernetes``) with its
renderer and validator."""

from typing import Optional

from omegaconf import DictConfig

from aegis.errors import Problems
from aegis.launch.kubernetes import KubernetesLauncher
from aegis.launch.base import gang_size
from aegis.launch.pytorchjob.checks import check as own_rules
from aegis.launch.pytorchjob.render import render_pytorchjob
from aegis.launch.pytorchjob.validate import validate_pytorchjob


class PyTorchJobLauncher(KubernetesLauncher):
    name = "pytorchjob"
    example_overrides = ("strategy=ddp",)
    render_manifest = render_pytorchjob
    validate_manifest = validate_pytorchjob

    def world_size(self, cfg: DictConfig) -> Optional[int]:
        return gang_size(cfg.launcher, "nproc_per_node", "nodes")

    def check(self, cfg: DictConfig, found: Problems) -> None:
        super().check(cfg, found)
        own_rules(cfg, found)

    def spans_nodes(self, cfg: DictConfig) -> bool:
        """A Master and Workers are scheduled apart: their claims must be ReadWriteMany."""
        return cfg.launcher.nodes > 1
