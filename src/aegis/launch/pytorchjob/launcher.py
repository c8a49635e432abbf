"""The PyTorchJob launcher: the shared Kubernetes lifecycle (``aegis.k8s.launcher``) with its
renderer and validator."""

from aegis.k8s.launcher import KubernetesLauncher
from aegis.launch.pytorchjob.render import render_pytorchjob
from aegis.launch.pytorchjob.validate import validate_pytorchjob


class PyTorchJobLauncher(KubernetesLauncher):
    name = "pytorchjob"
    example_overrides = ("strategy=ddp",)
    render_manifest = render_pytorchjob
    validate_manifest = validate_pytorchjob
