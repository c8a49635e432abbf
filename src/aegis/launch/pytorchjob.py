"""``launcher=pytorchjob``: a Kubeflow PyTorchJob, one Master and ``nodes - 1`` Workers."""

from __future__ import annotations

from omegaconf import DictConfig

from aegis.k8s.launcher import KubernetesLauncher
from aegis.k8s.manifests import Plan, render_pytorchjob
from aegis.k8s.validate import validate_pytorchjob
from aegis.launch.base import RunContext


class PyTorchJobLauncher(KubernetesLauncher):
    name = "pytorchjob"

    def render(self, cfg: DictConfig, ctx: RunContext) -> Plan:
        plan = render_pytorchjob(cfg, ctx)
        validate_pytorchjob(plan.manifest)
        return plan
