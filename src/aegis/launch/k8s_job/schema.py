"""The config of ``launcher=k8s-job``: everything a Kubernetes launcher has, nothing more."""

from __future__ import annotations

from dataclasses import dataclass

from aegis.k8s.schema import K8sLauncherConfig


@dataclass
class K8sJobLauncherConfig(K8sLauncherConfig):
    """A batch/v1 Job: one pod that runs ``train.py`` with ``launcher=local``."""

    name: str = "k8s-job"
