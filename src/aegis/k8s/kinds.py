"""The Kubernetes kinds Aegis submits, each one object that knows everything kind-specific.

The client, the follower and ``status``/``logs``/``cancel`` read a kind's API
coordinates, pod labels, replica names and terminal conditions from here and never
branch on a kind's name, so adding a kind (TrainJob, RayJob) is one more entry in
``KINDS``. Plain data: no kubernetes client, no torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from aegis.errors import AegisError
from aegis.launch.lifecycle import State


@dataclass(frozen=True)
class Kind:
    name: str  # the object's ``kind``
    group: str  # API group ("batch" for built-in Jobs: one custom-objects path serves every kind)
    version: str
    plural: str
    container: str  # the training container in every pod
    job_label: str  # a label every pod of the object carries, valued with the object's name
    primary_labels: Mapping[str, str] = field(default_factory=dict)  # narrows to the replica that logs rank 0
    # Pods named "<object>-<type>-<index>" with these labels get replica names like worker-1;
    # without them a replica is named by its pod (a Job's retries are distinct pods).
    replica_type_label: Optional[str] = None
    replica_index_label: Optional[str] = None
    # True conditions, highest priority first: the first one present decides the state.
    conditions: tuple[tuple[str, State], ...] = ()
    # What to install when the API server has no such API (a CRD); None for built-in kinds.
    missing_api_hint: Optional[str] = None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    def pods_selector(self, name: str) -> str:
        """Every pod of the object: workers stall and fail too."""
        return f"{self.job_label}={name}"

    def primary_selector(self, name: str) -> str:
        return ",".join([self.pods_selector(name), *(f"{k}={v}" for k, v in self.primary_labels.items())])

    def is_primary(self, pod: dict[str, Any]) -> bool:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        return all(labels.get(k) == v for k, v in self.primary_labels.items())

    def replica_name(self, pod: dict[str, Any], job_name: str) -> str:
        """``master-0``/``worker-1`` for replica-typed kinds, else the pod's name."""
        meta = pod.get("metadata") or {}
        pod_name = meta.get("name", "")
        if self.replica_type_label is None:
            return pod_name
        labels = meta.get("labels") or {}
        rtype, index = labels.get(self.replica_type_label), labels.get(self.replica_index_label or "")
        if rtype and index is not None:
            return f"{rtype.lower()}-{index}"
        prefix = f"{job_name}-"
        return pod_name[len(prefix):] if pod_name.startswith(prefix) else pod_name

    def condition_state(self, obj: dict[str, Any]) -> tuple[Optional[State], Optional[str]]:
        """The state the object's conditions decide, with the condition's reason; (None, None)
        when none decides (the pods then tell pending from running)."""
        true = {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []
                if c.get("status") == "True"}
        for ctype, state in self.conditions:
            if ctype in true:
                cond = true[ctype]
                reason = ": ".join(x for x in (cond.get("reason"), cond.get("message")) if x) or None
                return state, reason
        return None, None


JOB = Kind(
    name="Job", group="batch", version="v1", plural="jobs", container="train", job_label="job-name",
    # FailureTarget/SuccessCriteriaMet precede Failed/Complete while pods terminate: still running.
    conditions=(("Complete", State.succeeded), ("Failed", State.failed), ("Suspended", State.queued)),
)

PYTORCHJOB = Kind(
    name="PyTorchJob", group="kubeflow.org", version="v1", plural="pytorchjobs",
    container="pytorch",  # the Training Operator finds its container by this name
    job_label="training.kubeflow.org/job-name",
    primary_labels={"training.kubeflow.org/job-role": "master"},
    replica_type_label="training.kubeflow.org/replica-type",
    replica_index_label="training.kubeflow.org/replica-index",
    conditions=(("Succeeded", State.succeeded), ("Failed", State.failed), ("Suspended", State.queued),
                ("Restarting", State.running), ("Running", State.running), ("Created", State.pending)),
    missing_api_hint=(
        "install the Kubeflow Training Operator v1 (kubectl apply --server-side -k "
        "\"github.com/kubeflow/trainer.git/manifests/overlays/standalone?ref=v1.9.4\") or use launcher=k8s-job"
    ),
)

KINDS: dict[str, Kind] = {k.name: k for k in (JOB, PYTORCHJOB)}


def kind_of(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        known = ", ".join(sorted(KINDS))
        raise AegisError(f"{name!r} is not a Kubernetes kind Aegis knows: expected one of {known}.") from None


def natural_key(text: str) -> tuple:
    """worker-2 before worker-10."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))
