"""The config of ``launcher=pytorchjob``: the gang's shape and the operator's policies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from aegis.config import checks as c
from aegis.config.checks import meta
from aegis.k8s.schema import K8sLauncherConfig


@dataclass
class ElasticConfig:
    """torchrun elastic training through the operator's elasticPolicy (c10d rendezvous)."""

    enabled: bool = False
    min_nodes: Optional[int] = field(default=None, metadata=meta(c.at_least(1)))  # null: nodes
    max_nodes: Optional[int] = field(default=None, metadata=meta(c.at_least(1)))  # null: nodes
    max_restarts: int = field(default=3, metadata=meta(c.at_least(0)))
    rdzv_backend: str = field(default="c10d", metadata=meta(c.one_of("c10d")))


@dataclass
class PyTorchJobLauncherConfig(K8sLauncherConfig):
    """A Kubeflow PyTorchJob: one Master and ``nodes - 1`` Workers, each running torchrun."""

    name: str = "pytorchjob"
    nodes: int = field(default=2, metadata=meta(c.at_least(1)))
    nproc_per_node: int = field(default=1, metadata=meta(c.at_least(1)))  # per pod: one per GPU on GPU nodes
    # How many times a pod may be recreated after exiting 128-255 (143: preempted or lost a peer,
    # 137: the OOM killer) or failing in its prefetch-data init container: launcher.max_restarts + 1
    # attempts per pod, each gang restart counting once. The Training Operator never enforces
    # runPolicy.backoffLimit under restartPolicy ExitCode (kubeflow/trainer#2045), so the pods
    # count their own starts on the outputs volume and the one over the budget exits 3, which
    # fails the PyTorchJob (aegis.launch.restart_budget). Rendered as backoffLimit too.
    max_restarts: int = field(default=3, metadata=meta(c.at_least(0)))
    # Not a PyTorchJob key: launcher.max_restarts is (checks.py refuses a value).
    backoff_limit: Optional[int] = None
    clean_pod_policy: str = field(default="None", metadata=meta(c.one_of("None", "Running", "All")))
    elastic: ElasticConfig = field(default_factory=ElasticConfig)
    # Whether the cluster's Kueue manages PyTorchJobs: only with its kubeflow.org/pytorchjob
    # integration, which Kueue v0.19's default configuration leaves off (removal is planned).
    # "disabled" (Kueue's default) refuses launcher.queue and launcher.priority_class, which
    # Kueue would ignore; "enabled" for a Kueue whose integrations.frameworks lists it.
    kueue_pytorchjob: str = field(default="disabled", metadata=meta(c.one_of("disabled", "enabled")))
