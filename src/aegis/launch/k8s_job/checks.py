"""Rules of ``launcher=k8s-job`` beyond the shared Kubernetes ones: a Job name the API accepts."""

from __future__ import annotations

from omegaconf import DictConfig

from aegis.errors import Problems
from aegis.k8s import naming


def check(cfg: DictConfig, found: Problems) -> None:
    name = cfg.launcher.job_name
    if name is not None and not naming.is_dns_1123_label(name):
        found.add(
            f"launcher.job_name={name!r} is not a valid Job name: expected a DNS-1123 label "
            "(lowercase letters, digits and '-', at most 63 characters)."
        )
