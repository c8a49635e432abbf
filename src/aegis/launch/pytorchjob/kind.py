"""The Kubeflow PyTorchJob (kubeflow.org/v1) as the shared Kubernetes code sees it."""

from __future__ import annotations

from aegis.k8s.kinds import Kind
from aegis.launch.lifecycle import State

PYTORCHJOB = Kind(
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
