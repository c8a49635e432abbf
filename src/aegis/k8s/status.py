"""A Kubernetes object and its pods, read as a ``JobStatus``: one state word, one line per pod.

Pure functions of the dicts the API server returns (no client, no cluster), shared by
``KubernetesLauncher.status`` and the terminal follower so both tell the same story: the
object's conditions decide terminal states through its ``Kind``; before that, the pods
tell pending from running and say why a pod is stuck.
"""

from __future__ import annotations

from typing import Any, Optional

from aegis.k8s import kueue
from aegis.k8s.kinds import Kind, natural_key
from aegis.core.lifecycle import JobStatus, ReplicaStatus, State

# Container states that mean the pod will not make progress by itself.
STALLED = {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CrashLoopBackOff",
           "CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
# Termination reasons too plain to name a failure by.
PLAIN_ENDINGS = {None, "", "Error", "Completed"}


def true_conditions(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("status") == "True"]


def phrase(obj: dict[str, Any]) -> str:
    """A short phrase for the object's current state, as the follower prints it."""
    conditions = true_conditions(obj)
    if conditions:
        last = conditions[-1]
        words = last["type"]
        if last.get("reason") or last.get("message"):
            words += f" ({': '.join(x for x in (last.get('reason'), last.get('message')) if x)})"
        return words
    active = (obj.get("status") or {}).get("active")
    if active:
        return f"Active ({active} pod{'s' if active != 1 else ''})"
    return "Created"


def container_status(pod: dict[str, Any], container: str) -> dict[str, Any]:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == container:
            return cs
    return {}


def started(pod: dict[str, Any], container: str) -> bool:
    state = container_status(pod, container).get("state") or {}
    return "running" in state or "terminated" in state


def by_creation(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))


def replica(kind: Kind, pod: dict[str, Any], job_name: str) -> ReplicaStatus:
    """One pod: its training container's state, exit code and the reason that explains it."""
    status = pod.get("status") or {}
    phase = status.get("phase")
    cs = container_status(pod, kind.container)
    state = cs.get("state") or {}
    name = kind.replica_name(pod, job_name)
    node = (pod.get("spec") or {}).get("nodeName")
    if "terminated" in state:
        term = state["terminated"]
        code = term.get("exitCode")
        return ReplicaStatus(name, State.succeeded if code == 0 else State.failed, code,
                             term.get("reason") if term.get("reason") not in PLAIN_ENDINGS else None, node)
    if "running" in state:
        last = (cs.get("lastState") or {}).get("terminated") or {}
        reason = None
        if cs.get("restartCount"):
            cause = last.get("reason") or f"exit {last.get('exitCode')}"
            reason = f"restarted {cs['restartCount']}x, last: {cause}"
        return ReplicaStatus(name, State.running, None, reason, node)
    if phase in ("Succeeded", "Failed"):  # the container status is gone, the phase remains
        return ReplicaStatus(name, State.succeeded if phase == "Succeeded" else State.failed, None,
                             status.get("reason"), node)
    if phase == "Unknown":
        return ReplicaStatus(name, State.unknown, None, status.get("reason") or "node unreachable", node)
    waiting = state.get("waiting") or {}
    reason = waiting.get("reason")
    for cond in status.get("conditions") or []:  # Unschedulable: the scheduler's own sentence
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            reason = ": ".join(x for x in (cond.get("reason"), cond.get("message")) if x) or reason
    return ReplicaStatus(name, State.pending, None, reason, node)


def exit_code(kind: Kind, pods: list[dict[str, Any]]) -> int:
    """A failed object's exit code: its primary container's last non-zero one, else 1."""
    codes = []
    for pod in by_creation([p for p in pods if kind.is_primary(p)]):
        term = (container_status(pod, kind.container).get("state") or {}).get("terminated") or {}
        if term.get("exitCode"):
            codes.append(int(term["exitCode"]))
    return codes[-1] if codes else 1


def _failure_reason(kind: Kind, pods: list[dict[str, Any]], condition_reason: Optional[str]) -> Optional[str]:
    """The container's own cause (OOMKilled) first, then the controller's (BackoffLimitExceeded)."""
    causes = []
    for pod in reversed(by_creation([p for p in pods if kind.is_primary(p)])):
        cs = container_status(pod, kind.container)
        for where in ("state", "lastState"):
            term = (cs.get(where) or {}).get("terminated") or {}
            if term.get("reason") not in PLAIN_ENDINGS:
                causes.append(term["reason"])
                break
        if causes:
            break
    if condition_reason:
        causes.append(condition_reason)
    return "; ".join(causes) or None


def _eta(seconds: Any) -> Optional[str]:
    try:
        seconds = int(seconds)
    except (TypeError, ValueError):
        return None
    if seconds < 60:
        return f"~{seconds} s left"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"~{minutes} min left"
    return f"~{minutes // 60} h {minutes % 60} min left"


def trainer_progress(trainer_status: Any, max_metrics: int = 8) -> Optional[str]:
    """A TrainJob's ``status.trainerStatus`` as one phrase: ``42%, ~3 min left, val/acc=0.91
    (reported 2026-12-05T00:10:00Z)``. The training process posts it to Kubeflow Trainer's status
    server (v2.2+, feature gate ``TrainJobStatus``; Aegis's rank 0 does, through
    ``aegis.training.trainer_progress``) and the controller writes it; field names from
    ``pkg/apis/trainer/v1alpha1/trainjob_types.go`` (``TrainerStatus``, v2.3.0). None when absent."""
    if not isinstance(trainer_status, dict) or not trainer_status:
        return None
    parts = []
    if trainer_status.get("progressPercentage") is not None:
        parts.append(f"{trainer_status['progressPercentage']}%")
    eta = _eta(trainer_status.get("estimatedRemainingSeconds"))
    if eta:
        parts.append(eta)
    metrics = [m for m in trainer_status.get("metrics") or [] if isinstance(m, dict) and m.get("name")]
    if metrics:
        shown = " ".join(f"{m['name']}={m.get('value', '')}" for m in metrics[:max_metrics])
        parts.append(shown + (f" (+{len(metrics) - max_metrics} more)" if len(metrics) > max_metrics else ""))
    phrase_ = ", ".join(parts) or "reported"
    if trainer_status.get("lastUpdatedTime"):
        phrase_ += f" (reported {trainer_status['lastUpdatedTime']})"
    return phrase_


def job_status(kind: Kind, obj: dict[str, Any], pods: list[dict[str, Any]]) -> JobStatus:
    name = obj["metadata"]["name"]
    replicas = [replica(kind, p, name) for p in pods]
    primary = {kind.replica_name(p, name) for p in pods if kind.is_primary(p)}
    replicas.sort(key=lambda r: (r.name not in primary, natural_key(r.name)))
    state, reason = kind.condition_state(obj)
    details: dict[str, Any] = {}
    if not (state is not None and state.terminal) and kind.suspended(obj):
        # Held by its queue (Kueue suspends a queued job until admission, and again when it
        # preempts it): queued, not pending, for as long as it is suspended.
        state, reason = State.queued, kueue.waiting(obj, pods=len(pods))
        details = {"queue": kueue.queue_of(obj), "queued_since": kueue.queued_since(obj)}
    elif state is State.queued:
        state, reason = None, None  # the suspend flag is off: admitted, the condition not yet updated
    if state is None or state is State.pending:
        # Nothing decided yet: a replica that started (or already ended, before the controller
        # has noticed) means running; none started means pending.
        state = State.running if any(r.state is not State.pending for r in replicas) else State.pending
    exit_code_ = None
    if state is State.succeeded:
        exit_code_ = 0
    elif state is State.failed:
        exit_code_ = exit_code(kind, pods)
        reason = _failure_reason(kind, pods, reason)
    elif not reason:
        stuck = [r for r in replicas if r.state is State.pending and r.reason and r.reason != "ContainerCreating"]
        if stuck:
            reason = f"{stuck[0].name}: {stuck[0].reason}"
    progress = trainer_progress((obj.get("status") or {}).get("trainerStatus"))
    if progress:  # a TrainJob whose training reports to Trainer's status server
        details.update(progress=progress, trainer_status=obj["status"]["trainerStatus"])
    return JobStatus(state, replicas, exit_code_, reason,
                     details={"kind": kind.name, "name": name, "namespace": obj["metadata"].get("namespace"),
                              "phrase": phrase(obj), **details})
