"""The Job launcher: the shared Kubernetes lifecycle (``aegis.k8s.launcher``) with its renderer
and validator."""

from aegis.k8s.launcher import KubernetesLauncher
from aegis.launch.k8s_job.render import render_job
from aegis.launch.k8s_job.validate import validate_job


class K8sJobLauncher(KubernetesLauncher):
    name = "k8s-job"
    render_manifest = render_job
    validate_manifest = validate_job
