"""The Job launcher: the shared Kubernetes lifecycle (``aegis.launch.kubernetes``) with its renderer
and validator."""

from omegaconf import DictConfig

from aegis.errors import Problems
from aegis.launch.kubernetes import KubernetesLauncher
from aegis.launch.k8s_job.checks import check as own_rules
from aegis.launch.k8s_job.render import render_job
from aegis.launch.k8s_job.validate import validate_job


class K8sJobLauncher(KubernetesLauncher):
    name = "k8s-job"
    render_manifest = render_job
    validate_manifest = validate_job

    def check(self, cfg: DictConfig, found: Problems) -> None:
        super().check(cfg, found)
        own_rules(cfg, found)
