"""The Kubeflow PyTorchJob (kubeflow.org/v1) as the shared Kubernetes code sees it."""

from __future__ import annotations

from typing import Any, Optional

from aegis.k8s.kinds import Kind
from aegis.core.lifecycle import State

# On the pods of an elastic PyTorchJob (launcher.elastic.enabled), whose node ranks the
# rendezvous assigns: not the replica labels.
ELASTIC_LABEL = "aegis.dev/elastic"


class PyTorchJobKind(Kind):
    """A PyTorchJob's node ranks: the Master is node 0 and Worker i node i + 1 (the operator's
    PET_NODE_RANK), except in an elastic job. There torchrun's c10d rendezvous (hosted on
    worker-0: the operator's PET_RDZV_ENDPOINT, ``pkg/controller.v1/pytorch/elastic.go``)
    numbers the nodes of each round itself, in the sorted order of their host names
    (torch ``dynamic_rendezvous.py``): the Master first while it is in the round, worker-10
    before worker-2, and every node one lower when the Master is not. No label says which, so
    an elastic pod names no rank."""

    def node_rank(self, pod: dict[str, Any]) -> Optional[int]:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if labels.get(ELASTIC_LABEL) == "true":
            return None
        return super().node_rank(pod)


PYTORCHJOB = PyTorchJobKind(
    name="PyTorchJob", group="kubeflow.org", version="v1", plural="pytorchjobs",
    container="pytorch",  # the Training Operator finds its container by this name
    job_label="training.kubeflow.org/job-name",
    primary_labels={"training.kubeflow.org/job-role": "master"},
    replica_type_label="training.kubeflow.org/replica-type",
    replica_index_label="training.kubeflow.org/replica-index",
    conditions=(("Succeeded", State.succeeded), ("Failed", State.failed), ("Suspended", State.queued),
                ("Restarting", State.running), ("Running", State.running), ("Created", State.pending)),
    suspend_field=("spec", "runPolicy", "suspend"),
    node_rank_base={"master": 0, "worker": 1},
    missing_api_hint=(
        "install the Kubeflow Training Operator v1 (kubectl apply --server-side -k "
        "\"github.com/kubeflow/trainer.git/manifests/overlays/standalone?ref=v1.9.4\") or use launcher=k8s-job"
    ),
)
