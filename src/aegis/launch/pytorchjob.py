"""``launcher=pytorchjob``: a Kubeflow PyTorchJob, one Master and ``nodes - 1`` Workers."""

from aegis.k8s.launcher import KubernetesLauncher
from aegis.k8s.manifests import render_pytorchjob
from aegis.k8s.validate import validate_pytorchjob


class PyTorchJobLauncher(KubernetesLauncher):
    name = "pytorchjob"
    render_manifest = render_pytorchjob
    validate_manifest = validate_pytorchjob
