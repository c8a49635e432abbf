"""The config of ``launcher=trainjob``: the gang's shape and the runtime it runs on.

Keys the shared Kubernetes schema has but a TrainJob cannot carry (Trainer v2.3 has no field
for them: retries and cleanup belong to the runtime, the pull policy and working dir to its
container) default to null here, and ``checks`` refuses a value in one sentence rather than
dropping it silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from aegis.config import checks as c
from aegis.config.checks import meta
from aegis.k8s.schema import K8sLauncherConfig

RUNTIME_KINDS = ("ClusterTrainingRuntime", "TrainingRuntime")


@dataclass
class TrainJobLauncherConfig(K8sLauncherConfig):
    """A Kubeflow Trainer v2 TrainJob: ``nodes`` pods of ``nproc_per_node`` processes each."""

    name: str = "trainjob"
    nodes: int = field(default=2, metadata=meta(c.at_least(1)))
    # Always rendered: Trainer's default "auto" starts one process per requested CPU on CPU nodes.
    nproc_per_node: int = field(default=1, metadata=meta(c.at_least(1)))
    # The runtime the TrainJob's runtimeRef names: a ClusterTrainingRuntime (cluster-wide, what
    # Trainer's install provides) or a TrainingRuntime in launcher.namespace.
    runtime: str = field(default="torch-distributed", metadata=meta(c.non_empty()))
    runtime_kind: str = field(default="ClusterTrainingRuntime", metadata=meta(c.one_of(*RUNTIME_KINDS)))
    # No TrainJob field: null, and refused when set (checks.py).
    image_pull_policy: Optional[str] = None
    backoff_limit: Optional[int] = None
    ttl_seconds_after_finished: Optional[int] = None
