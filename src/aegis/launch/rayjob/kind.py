"""The KubeRay RayJob (ray.io/v1) as the shared Kubernetes code sees it.

A RayJob has no ``status.conditions``: KubeRay reports ``status.jobDeploymentStatus`` (the
RayJob's own lifecycle: Initializing, Running, Complete, Failed, Suspended, ...) and
``status.jobStatus`` (the Ray job's: PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED), so this
kind reads those instead of conditions. Its pods are the Ray head, the workers and the
submitter (a Kubernetes Job named like the RayJob, whose pod runs ``ray job submit`` and then
follows the Ray job's log: the search's progress, hence the primary replica). Every pod
template Aegis renders carries ``app.kubernetes.io/instance=<rayjob>`` and
``aegis.dev/ray-role`` (head, worker, submitter): KubeRay keeps template labels, while its own
``ray.io/cluster`` names the generated RayCluster (``<rayjob>-<5 random>``), not the RayJob.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from aegis.k8s.kinds import Kind
from aegis.core.lifecycle import State

CONTAINER = "ray"  # the Ray container of the head, worker and submitter pods (KubeRay's index 0)
INSTANCE_LABEL = "app.kubernetes.io/instance"
ROLE_LABEL = "aegis.dev/ray-role"
HEAD, WORKER, SUBMITTER = "head", "worker", "submitter"
WORKER_GROUP = "workers"
# KubeRay's RayJob name limit: its RayCluster is <name>-<5 random>, within 53 characters.
MAX_NAME_LENGTH = 47


@dataclass(frozen=True)
class RayJobKind(Kind):
    def condition_state(self, obj: dict[str, Any]) -> tuple[Optional[State], Optional[str]]:
        """The state ``jobDeploymentStatus`` (with ``jobStatus``) decides, and KubeRay's reason."""
        status = obj.get("status") or {}
        deployment = status.get("jobDeploymentStatus") or ""
        job = status.get("jobStatus") or ""
        reason = ": ".join(x for x in (status.get("reason"), status.get("message")) if x) or None
        if deployment == "Complete":
            if job == "SUCCEEDED":
                return State.succeeded, None
            return State.failed, reason or f"the Ray job ended {job or 'without a status'}"
        if deployment in ("Failed", "ValidationFailed"):
            return State.failed, reason or f"RayJob {deployment}"
        if deployment in ("Suspended", "Suspending"):
            return State.queued, reason
        if deployment in ("Running", "Retrying"):
            return State.running, reason if deployment == "Retrying" else None
        return None, None  # New, Initializing: the pods tell pending from running

    def suspended(self, obj: dict[str, Any]) -> bool:
        """Held by its queue: ``spec.suspend`` when set, else KubeRay's Suspended status."""
        flag = (obj.get("spec") or {}).get("suspend")
        if flag is not None:
            return bool(flag)
        return (obj.get("status") or {}).get("jobDeploymentStatus") == "Suspended"

    def replica_name(self, pod: dict[str, Any], job_name: str) -> str:
        """``head``, ``submitter``, ``worker-<pod suffix>`` (KubeRay names workers at random)."""
        meta = pod.get("metadata") or {}
        role = (meta.get("labels") or {}).get(ROLE_LABEL)
        name = meta.get("name", "")
        if role == WORKER:
            return f"{WORKER}-{name.rsplit('-', 1)[-1]}"
        return role or name


RAYJOB = RayJobKind(
    name="RayJob", group="ray.io", version="v1", plural="rayjobs",
    container=CONTAINER,
    job_label=INSTANCE_LABEL,
    primary_labels={ROLE_LABEL: SUBMITTER},
    replica_type_label=ROLE_LABEL,
    missing_api_hint=(
        "install KubeRay (helm install kuberay-operator kuberay/kuberay-operator --version 1.7.0) "
        "or run the search against a Ray cluster you reach with hydra.sweeper.address=ray://<head>:10001"
    ),
)
