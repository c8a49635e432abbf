"""The TrainJob launcher: the shared Kubernetes lifecycle (``aegis.k8s.launcher``) with its
renderer and validator."""

from omegaconf import DictConfig

from aegis.errors import Problems
from aegis.k8s.launcher import KubernetesLauncher
from aegis.launch.trainjob.checks import check as own_rules
from aegis.launch.trainjob.render import render_trainjob
from aegis.launch.trainjob.validate import validate_trainjob


class TrainJobLauncher(KubernetesLauncher):
    name = "trainjob"
    example_overrides = ("strategy=ddp",)
    render_manifest = render_trainjob
    validate_manifest = validate_trainjob

    def check(self, cfg: DictConfig, found: Problems) -> None:
        super().check(cfg, found)
        own_rules(cfg, found)

    def spans_nodes(self, cfg: DictConfig) -> bool:
        """The node pods are scheduled apart: their claims must be ReadWriteMany."""
        return cfg.launcher.nodes > 1
