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
    # The runtime the TrainJob's runtimeRef names: a ClusterTrainingRuntime (cluster-wide) or a
    # TrainingRuntime in launcher.namespace. aegis-torch is Aegis's own (aegis.launch.trainjob.
    # runtime; kubectl apply -f k8s/clustertrainingruntime-aegis-torch.yaml), with the retry rules
    # the README promises; torch-distributed, the one Trainer installs, has its own.
    runtime: str = field(default="aegis-torch", metadata=meta(c.non_empty()))
    runtime_kind: str = field(default="ClusterTrainingRuntime", metadata=meta(c.one_of(*RUNTIME_KINDS)))
    # The aegis-torch runtime's JobSet failurePolicy.maxRestarts: how many times a gang killed by a
    # signal (143, 137) restarts, all pods resuming from last.ckpt. A TrainJob cannot carry it:
    # it takes effect in the runtime rendered from this config (the dry run writes it).
    max_restarts: int = field(default=3, metadata=meta(c.at_least(0)))
    # No TrainJob field: null, and refused when set (checks.py).
    image_pull_policy: Optional[str] = None
    backoff_limit: Optional[int] = None
    ttl_seconds_after_finished: Optional[int] = None
