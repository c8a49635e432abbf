"""``launcher=k8s-job``: a batch/v1 Job whose pod runs ``train.py`` with ``launcher=local``."""

from __future__ import annotations

from omegaconf import DictConfig

from aegis.k8s.launcher import KubernetesLauncher
from aegis.k8s.manifests import Plan, render_job
from aegis.k8s.validate import validate_job
from aegis.launch.base import RunContext


class K8sJobLauncher(KubernetesLauncher):
    name = "k8s-job"

    def render(self, cfg: DictConfig, ctx: RunContext) -> Plan:
        plan = render_job(cfg, ctx)
        validate_job(plan.manifest)
        return plan
