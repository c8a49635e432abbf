"""Why a Kubernetes job failed, or why it has not started, as one ``aegis.failures.record.Failure``.

"Job failed (exit code 137)" is what the controller says; what a user needs is which pod
(and rank) and why, in the operator's words: out of memory at its limit, an image that
cannot be pulled, no node that fits, an eviction, a volume that cannot be mounted. The
answer lies in three places the API server keeps apart: the pods' container statuses
(terminated reason, exit code, restart count, lastState), the events about each pod
(FailedScheduling with the scheduler's sentence, Failed with the registry's error,
FailedMount, Evicted) and the failing container's last log lines.

``diagnose`` and ``stalled`` are pure functions of those dicts, so the fake API server's
tests and the container tier (a pod status built from ``podman inspect``) go through the
same code as a cluster; ``explain`` fetches them. When several pods failed, the one named
failed for a reason of its own (OOMKilled, evicted, could not run, SIGKILL) before one that
exited with an error, before one that was stopped (SIGTERM: a preemption or a lost peer),
earliest first, as ``aegis.failures.record.first`` orders ranks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Optional

from aegis.failures.record import LOG_TAIL_LINES, Failure, signal_of_exit
from aegis.k8s.kinds import Kind, natural_key
from aegis.k8s.status import by_creation, container_status

if TYPE_CHECKING:
    from aegis.k8s.client import Cluster

PULL = {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable"}
CANNOT_CREATE = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError", "PreCreateHookError"}
CANNOT_RUN = {"ContainerCannotRun", "StartError"}
MOUNT_EVENTS = ("FailedMount", "FailedAttachVolume")
# A pod's DisruptionTarget condition: the cluster, not the run, ended it.
DISRUPTIONS = {
    "PreemptionByScheduler": "preempted by the scheduler for a higher-priority pod",
    "DeletionByTaintManager": "deleted from a node tainted NoExecute",
    "EvictionByEvictionAPI": "evicted through the Eviction API (a node drain)",
    "DeletionByPodGC": "deleted after its node was lost",
    "TerminationByKubelet": "terminated by the kubelet (node pressure or shutdown)",
}
PROCS_ENV = "PET_NPROC_PER_NODE"  # injected by the Training Operator and Trainer's torch plugin
_OWN_REPORT = re.compile(r"Run failed: rank (\d+)(?: \(pod [^)]*\))?: (.+?)\.?(?: \((?:exit code|killed by)[^)]*\))?$")
_EXCEPTION = re.compile(r"^(?P<name>[A-Za-z_][\w.]*)(?::\s?(?P<message>.*))?$")


@dataclass
class Diagnosis:
    """The failure, and where its log is: ``pod`` (None: no pod to read) and whether the
    failure is the container's previous start (it restarted since)."""

    failure: Failure
    pod: Optional[str] = None
    previous: bool = False
    started: bool = False  # the container ran, so it has a log
    severity: int = 9  # 0: a cause of its own ... 3: stopped by a signal; lower is reported first
    when: str = ""  # when it ended (finishedAt), for the earliest of equals


# ------------------------------------------------------------------ pod facts


def _spec_container(kind: Kind, pod: dict[str, Any]) -> dict[str, Any]:
    for c in (pod.get("spec") or {}).get("containers") or []:
        if c.get("name") == kind.container:
            return c
    return {}


def memory_limit(kind: Kind, pod: dict[str, Any]) -> Optional[str]:
    return (((_spec_container(kind, pod).get("resources") or {}).get("limits") or {}).get("memory"))


def _image(kind: Kind, pod: dict[str, Any]) -> Optional[str]:
    return _spec_container(kind, pod).get("image") or container_status(pod, kind.container).get("image")


def rank(kind: Kind, pod: dict[str, Any]) -> Optional[int]:
    """The pod's global rank when it is one: its node rank (replica labels) when the pod runs
    one process (``PET_NPROC_PER_NODE`` in its env); None otherwise (a pod of several ranks,
    a Job's pod), when the pod's name is what identifies it."""
    node = kind.node_rank(pod)
    env = {e.get("name"): e.get("value") for e in _spec_container(kind, pod).get("env") or []}
    return node if node is not None and str(env.get(PROCS_ENV)) == "1" else None


def _events_of(events: Iterable[dict[str, Any]], name: str, *reasons: str) -> list[dict[str, Any]]:
    """Events about ``name`` with one of ``reasons``, newest last."""
    found = [e for e in events if (e.get("involvedObject") or {}).get("name") == name and e.get("reason") in reasons]
    return sorted(found, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")


def _condition(pod: dict[str, Any], ctype: str) -> dict[str, Any]:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return {}


def _detail(reason: Optional[str], message: Optional[str]) -> str:
    return ": ".join(x for x in (reason, (message or "").strip().rstrip(".")) if x)


# ------------------------------------------------------------ one pod, ended


def _ended(kind: Kind, pod: dict[str, Any], events: list[dict[str, Any]]) -> Optional[Diagnosis]:
    """Why this pod's training container ended badly; None when it has not (running, pending,
    succeeded)."""
    name = pod["metadata"]["name"]
    status = pod.get("status") or {}
    cs = container_status(pod, kind.container)
    state = cs.get("state") or {}
    term, previous = state.get("terminated"), False
    if term is None and "waiting" in state:  # restarting (CrashLoopBackOff): the last start's end
        term, previous = (cs.get("lastState") or {}).get("terminated"), True
    term = term or {}
    code, reason = term.get("exitCode"), term.get("reason")
    evicted = status.get("reason") == "Evicted" or bool(_events_of(events, name, "Evicted"))
    failed_without_status = status.get("phase") == "Failed" and not term
    if not (evicted or code or reason in CANNOT_RUN or failed_without_status):
        return None
    signal = signal_of_exit(code)
    disruption = _condition(pod, "DisruptionTarget")
    node = (pod.get("spec") or {}).get("nodeName")
    hint = ""
    if reason == "OOMKilled":
        limit = memory_limit(kind, pod)
        cause = f"out of memory (OOMKilled) at limit {limit}" if limit else "out of memory (OOMKilled)"
        hint, severity = "; raise launcher.resources.memory", 0
    elif evicted:
        said = [e.get("message") for e in _events_of(events, name, "Evicted")]
        message = status.get("message") or (said[-1] if said else "")
        cause = "evicted" + (f" from node {node}" if node else "") + (f": {_detail(None, message)}" if message else "")
        severity = 0
    elif reason in CANNOT_RUN:
        cause, severity = f"the container cannot run ({_detail(reason, term.get('message'))})", 0
    elif disruption.get("status") == "True" and disruption.get("reason") in DISRUPTIONS:
        cause, severity = DISRUPTIONS[disruption["reason"]], 3
    elif signal == "SIGKILL":
        cause, severity = "killed by SIGKILL (not for memory by the kubelet's account)", 1
    elif signal:
        cause, severity = f"stopped by {signal} (a preemption, a deletion or a lost peer)", 3
    elif code:
        cause, severity = f"exited with code {code}" + (f" ({reason})" if reason not in (None, "", "Error") else ""), 2
    else:  # failed with no container status left: the pod's own word
        cause, severity = f"failed ({_detail(status.get('reason'), status.get('message')) or 'no reason given'})", 2
    restarts = int(cs.get("restartCount") or 0)
    if restarts:
        cause += f", after {restarts} restart{'s' if restarts != 1 else ''}"
    cause += hint
    failure = Failure(cause, rank=rank(kind, pod), pod=name, exit_code=code, signal=signal,
                      # terminationMessagePolicy FallbackToLogsOnError: the log's tail, kept with the status
                      log_tail=(term.get("message") or "").splitlines() if reason not in CANNOT_RUN else [])
    return Diagnosis(failure, name, previous, started=bool(term.get("startedAt") or code is not None),
                     severity=severity, when=term.get("finishedAt") or "")


# ---------------------------------------------------------- one pod, waiting


def _waiting(kind: Kind, pod: dict[str, Any], events: list[dict[str, Any]]) -> Optional[Diagnosis]:
    """Why this pod's training container has not started; None when nothing says it is stuck
    (ContainerCreating with no warning: an image being pulled, a volume being attached)."""
    name = pod["metadata"]["name"]
    cs = container_status(pod, kind.container)
    waiting = (cs.get("state") or {}).get("waiting") or {}
    reason, message = waiting.get("reason"), waiting.get("message")
    cause = None
    if reason in PULL:
        pulls = [e for e in _events_of(events, name, "Failed") if "pull" in (e.get("message") or "").lower()]
        detail = pulls[-1]["message"] if pulls else message
        image = _image(kind, pod)
        detail = re.sub(r'^Failed to pull image "[^"]*":\s*', "", detail or "")
        cause = f"image {image} cannot be pulled ({_detail(reason, detail)})"
    elif reason in CANNOT_CREATE:
        cause = f"the container cannot be created ({_detail(reason, message)})"
    else:
        mounts = _events_of(events, name, *MOUNT_EVENTS)
        scheduled = _condition(pod, "PodScheduled")
        unschedulable = _events_of(events, name, "FailedScheduling")
        if scheduled.get("status") == "False" and (scheduled.get("message") or not unschedulable):
            cause = f"cannot be scheduled: {_detail(None, scheduled.get('message') or scheduled.get('reason'))}"
        elif unschedulable and scheduled.get("status") != "True":
            cause = f"cannot be scheduled: {_detail(None, unschedulable[-1].get('message'))}"
        elif mounts:
            cause = f"a volume cannot be mounted ({_detail(mounts[-1].get('reason'), mounts[-1].get('message'))})"
    if cause is None:
        return None
    return Diagnosis(Failure(cause, rank=rank(kind, pod), pod=name), name)


# ------------------------------------------------------------------ the job


def _ordered(kind: Kind, obj: dict[str, Any], pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    job = obj["metadata"]["name"]
    return sorted(by_creation(pods), key=lambda p: (not kind.is_primary(p), natural_key(kind.replica_name(p, job))))


def stalled(kind: Kind, obj: dict[str, Any], pods: list[dict[str, Any]],
            events: list[dict[str, Any]]) -> Optional[Diagnosis]:
    """Why the job has not started: the first pod (primary first) that says why, else the job's
    own warning (FailedCreate: a quota, an admission policy)."""
    for pod in _ordered(kind, obj, pods):
        found = _waiting(kind, pod, events)
        if found is not None:
            return found
    created = _events_of(events, obj["metadata"]["name"], "FailedCreate")
    if created:
        return Diagnosis(Failure(f"no pod can be created ({_detail('FailedCreate', created[-1].get('message'))})"))
    return None


def diagnose(kind: Kind, obj: dict[str, Any], pods: list[dict[str, Any]],
             events: list[dict[str, Any]]) -> Diagnosis:
    """Why the job failed: the pod that failed first for a cause of its own, else the reason a
    pod never started, else the job's failed condition."""
    ended = [d for d in (_ended(kind, p, events) for p in _ordered(kind, obj, pods)) if d is not None]
    if ended:
        return min(ended, key=lambda d: (d.severity, d.when or "~"))
    waiting = stalled(kind, obj, pods, events)
    state, reason = kind.condition_state(obj)
    if waiting is not None:
        if reason:
            waiting.failure.cause += f"; the {kind.name} gave up ({reason})"
        return waiting
    if reason and reason.startswith("DeadlineExceeded"):
        return Diagnosis(Failure(f"ran longer than launcher.active_deadline_seconds and was stopped ({reason})"))
    said = f" ({reason})" if reason else " with no pod left to say why"
    return Diagnosis(Failure(f"the {kind.name} failed{said}"))


# -------------------------------------------------------------- the log's end


def own_report(failure: Failure, lines: list[str]) -> Failure:
    """``failure`` with what the log's end adds: the log tail, the exception a Python traceback
    ends with, and the rank and cause the pod's own report names (the gang supervisor in the
    pod prints ``Run failed: rank N: ...``), which say more than an exit code."""
    lines = [line for line in lines if line.strip()]
    if not lines:
        return failure
    failure = Failure.from_dict({**failure.as_dict(), "log_tail": lines})
    plain_exit = failure.cause.startswith(("exited with code", "stopped by", "killed by", "failed ("))
    for line in reversed(lines):
        m = _OWN_REPORT.search(line)
        if m:
            failure.rank = int(m.group(1))
            if plain_exit:
                failure.cause = m.group(2)
            return failure
    if "Traceback (most recent call last):" in lines:
        start = len(lines) - 1 - lines[::-1].index("Traceback (most recent call last):")
        for line in lines[start + 1:]:
            m = _EXCEPTION.match(line) if not line[:1].isspace() else None
            if m:
                failure.exception = m.group("name").rsplit(".", 1)[-1]
                failure.message = m.group("message")
                if plain_exit:
                    failure.cause = f"raised {line.strip()}"
                break
    return failure


def explain(cluster: "Cluster", kind: Kind, obj: dict[str, Any], pods: list[dict[str, Any]], *,
            failed: bool = True) -> Optional[Failure]:
    """The failure (``failed``) or the stall (not ``failed``; None when nothing says the job
    is stuck) of a job, with the failing pod's last log lines read from the cluster."""
    from aegis.k8s.client import ClusterError

    namespace, name = obj["metadata"].get("namespace") or "default", obj["metadata"]["name"]
    events = cluster.events(namespace, [name] + [p["metadata"]["name"] for p in pods])
    found = diagnose(kind, obj, pods, events) if failed else stalled(kind, obj, pods, events)
    if found is None:
        return None
    lines: list[str] = []
    if found.pod and found.started:
        try:
            lines = list(cluster.stream_logs(found.pod, namespace, kind.container, follow=False,
                                             previous=found.previous, tail_lines=LOG_TAIL_LINES))
        except ClusterError:  # the pod is gone: the termination message is all there is
            lines = []
    return own_report(found.failure, lines or found.failure.log_tail)
