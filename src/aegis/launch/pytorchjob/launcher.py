"""The PyTorchJob launcher: the shared Kubernetes lifecycle (``aegis.launch.kubernetes``) with its
renderer and validator."""

from typing import ContextManager, Optional

from omegaconf import DictConfig

from aegis.errors import Problems
from aegis.launch.kubernetes import KubernetesLauncher
from aegis.launch.base import MOST_NODES, MOST_PROCESSES_PER_NODE, MOST_RESTARTS, gang_size
from aegis.launch.pytorchjob.checks import check as own_rules
from aegis.launch.pytorchjob.render import fixed_submission_token, render_pytorchjob
from aegis.launch.pytorchjob.validate import validate_pytorchjob


class PyTorchJobLauncher(KubernetesLauncher):
    name = "pytorchjob"
    example_overrides = ("strategy=ddp",)
    # The source on S3, cached on the dataset-cache claim and filled by the prefetch init
    # container (docs/data.md); credentials from a Secret named in env_from, never in the manifest.
    examples = (("pytorchjob-s3-dataset.yaml",
                 ("strategy=ddp", "launcher.nodes=2", "data=image_folder", "data.source=s3://my-bucket/datasets/digits.tar",
                  "model=cnn", "launcher.prefetch_data=true", "launcher.env_from=[s3-credentials]")),)
    render_manifest = render_pytorchjob
    bounds = {**KubernetesLauncher.bounds, "nodes": MOST_NODES, "nproc_per_node": MOST_PROCESSES_PER_NODE,
              "max_restarts": MOST_RESTARTS, "elastic.min_nodes": MOST_NODES, "elastic.max_nodes": MOST_NODES}
    validate_manifest = validate_pytorchjob

    def reproducible(self) -> ContextManager[None]:
        """The restart budget's folder token, random per submission, pinned (k8s/'s files)."""
        return fixed_submission_token("example")

    def world_size(self, cfg: DictConfig) -> Optional[int]:
        return gang_size(cfg.launcher, "nproc_per_node", "nodes")

    def check(self, cfg: DictConfig, found: Problems) -> None:
        super().check(cfg, found)
        own_rules(cfg, found)

    def spans_nodes(self, cfg: DictConfig) -> bool:
        """A Master and Workers are scheduled apart: their claims must be ReadWriteMany."""
        return cfg.launcher.nodes > 1
