"""``launcher=k8s-job``: a batch/v1 Job whose pod runs ``train.py`` with ``launcher=local``."""

from aegis.k8s.launcher import KubernetesLauncher
from aegis.k8s.manifests import render_job
from aegis.k8s.validate import validate_job


class K8sJobLauncher(KubernetesLauncher):
    name = "k8s-job"
    render_manifest = render_job
    validate_manifest = validate_job
