"""Rules of ``launcher=pytorchjob`` beyond the shared Kubernetes ones: a DNS-1035 name the
operator accepts, an elastic range that holds ``nodes``, one process per GPU, and a DDP
shape that agrees with the job's."""

from __future__ import annotations

from omegaconf import DictConfig

from aegis.errors import Problems
from aegis.k8s import naming


def check(cfg: DictConfig, found: Problems) -> None:
    launcher = cfg.launcher
    name = launcher.job_name
    if name is not None and not (naming.is_dns_1035_label(name) and len(name) <= naming.MAX_JOB_NAME):
        found.add(
            f"launcher.job_name={name!r} is not a valid PyTorchJob name: expected a DNS-1035 label of at most "
            f"{naming.MAX_JOB_NAME} characters (a lowercase letter first, then lowercase letters, digits and '-')."
        )
    _gang(cfg, launcher, found)


def _gang(cfg: DictConfig, launcher: DictConfig, found: Problems) -> None:
    elastic = launcher.elastic
    if elastic.enabled and not found.refused("launcher.nodes", "launcher.elastic"):
        if launcher.nodes < 2:
            found.add(
                f"launcher.elastic.enabled=true needs at least one Worker: set launcher.nodes >= 2 (now {launcher.nodes}).",
                "launcher.nodes",
            )
        low = elastic.min_nodes if elastic.min_nodes is not None else launcher.nodes
        high = elastic.max_nodes if elastic.max_nodes is not None else launcher.nodes
        if not found.refused("launcher.nodes") and not low <= launcher.nodes <= high:
            found.add(
                f"launcher.nodes={launcher.nodes} must lie within launcher.elastic.min_nodes={low} and "
                f"launcher.elastic.max_nodes={high}."
            )
    gpus = launcher.resources.gpu
    if gpus and not found.refused("launcher.resources.gpu", "launcher.nproc_per_node") and launcher.nproc_per_node > gpus:
        found.add(
            f"launcher.nproc_per_node={launcher.nproc_per_node} exceeds launcher.resources.gpu={gpus}: "
            "run one process per GPU (set launcher.nproc_per_node to at most the GPUs per pod)."
        )
    strategy = cfg.strategy
    if strategy.name == "ddp" and not found.refused("launcher.nodes", "strategy.num_nodes") \
            and strategy.get("num_nodes") not in (None, launcher.nodes):
        found.add(
            f"strategy.num_nodes={strategy.num_nodes} disagrees with launcher.nodes={launcher.nodes}: "
            "leave strategy.num_nodes null to read it from torchrun."
        )

