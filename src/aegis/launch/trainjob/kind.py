"""The Kubeflow Trainer v2 TrainJob (trainer.kubeflow.org/v1alpha1) as the shared Kubernetes code
sees it.

Trainer turns a TrainJob into a JobSet of the same name; its pods carry the JobSet's labels
(``jobset.sigs.k8s.io/jobset-name``) and, being pods of an Indexed Job, their node rank as
``batch.kubernetes.io/job-completion-index`` (the torch plugin's PET_NODE_RANK), so node 0 is
the replica that logs rank 0. The runtime's training container is named ``node``.
"""

from __future__ import annotations

from aegis.k8s.kinds import Kind
from aegis.core.lifecycle import State

CONTAINER = "node"  # the torch plugin injects PET_* into the runtime's container of this name
REPLICATED_JOB = "node"  # the runtime's replicated job that trains (torch-distributed's)
JOBSET_LABEL = "jobset.sigs.k8s.io/jobset-name"
REPLICATED_JOB_LABEL = "jobset.sigs.k8s.io/replicatedjob-name"
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"

TRAINJOB = Kind(
    name="TrainJob", group="trainer.kubeflow.org", version="v1alpha1", plural="trainjobs",
    container=CONTAINER,
    job_label=JOBSET_LABEL,
    primary_labels={REPLICATED_JOB_LABEL: REPLICATED_JOB, INDEX_LABEL: "0"},
    replica_type_label=REPLICATED_JOB_LABEL,
    replica_index_label=INDEX_LABEL,
    node_rank_base={REPLICATED_JOB: 0},  # the completion index is the node rank (PET_NODE_RANK)
    # The TrainJob's condition types (CRD v2.3.0): Complete and Failed end it; Suspended is
    # Kueue (or a user) holding it; Created means the JobSet exists and the pods tell the rest.
    conditions=(("Complete", State.succeeded), ("Failed", State.failed), ("Suspended", State.queued),
                ("Created", State.pending)),
    missing_api_hint=(
        "install Kubeflow Trainer v2 (kubectl apply --server-side -k "
        "\"github.com/kubeflow/trainer.git/manifests/overlays/manager?ref=v2.3.0\", then its runtimes: "
        "\"github.com/kubeflow/trainer.git/manifests/overlays/runtimes?ref=v2.3.0\") or use launcher=pytorchjob"
    ),
)


def longest_pod_name(name: str, nodes: int) -> str:
    """The longest pod name the TrainJob ``name`` of ``nodes`` nodes gets, as JobSet's admission
    webhook computes it: ``<jobset>-<replicated job>-<job index>-<pod index>-<5 random>``, which
    must be a DNS-1035 label (so at most 63 characters)."""
    return f"{name}-{REPLICATED_JOB}-0-{max(nodes, 1) - 1}-abcde"


def max_name_length(nodes: int) -> int:
    """The longest TrainJob name whose pods' names stay within 63 characters."""
    return 63 - len(longest_pod_name("", nodes))
