"""Kueue, for every Kubernetes launcher: the labels that queue a job, their checks, and how a
queued or requeued job reads.

A job joins a Kueue LocalQueue through the label ``kueue.x-k8s.io/queue-name`` on the job
object (the Job, PyTorchJob, TrainJob...), and takes a WorkloadPriorityClass through
``kueue.x-k8s.io/priority-class``. Kueue's mutating webhook suspends a job that carries the
queue label when it is created (``jobframework.ApplyDefaultForSuspend``) and unsuspends it on
admission, so Aegis never renders ``suspend`` at all: ``suspend: false`` would race Kueue, and
``suspend: true`` would hold the job forever on a cluster without Kueue, where the label is
inert. Preemption is Kueue suspending the job again (its pods are deleted) and requeueing
it; the readmitted pods resume from ``last.ckpt`` in the same pinned run dir.

The labels go on the job object only, never on the pod templates: Kueue reads them there,
and a queue label on pods could make Kueue's pod integration manage them a second time.
Pure: no client, no cluster, no torch.
"""

from __future__ import annotations

import time
from calendar import timegm
from typing import Any, Optional

from omegaconf import DictConfig

from aegis.errors import Problems
from aegis.k8s import naming

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
_LABEL_OF = {"queue": QUEUE_LABEL, "priority_class": PRIORITY_LABEL}
_WHAT = {"queue": ("LocalQueue", "team-a"), "priority_class": ("WorkloadPriorityClass", "high"),
         "pod_priority_class": ("PriorityClass", "high-priority")}


def labels(cfg: DictConfig) -> dict[str, str]:
    """The Kueue labels of the job object; none when no queue or priority is configured."""
    launcher = cfg.launcher
    return {label: str(launcher[key]) for key, label in _LABEL_OF.items() if launcher.get(key) is not None}


def _is_name(value: str) -> bool:
    """An object name (DNS-1123 subdomain) that also fits a label value (63 characters)."""
    return naming.is_dns_1123_subdomain(value) and naming.is_label_value(value)


def check(cfg: DictConfig, found: Problems) -> None:
    """Each name must be one the API server accepts where it goes (a label value naming an
    object, or a pod's priorityClassName), and the queue is set in one place only."""
    launcher = cfg.launcher
    for key, (what, example) in _WHAT.items():
        value = launcher.get(key)
        if value is None or found.refused(f"launcher.{key}"):
            continue
        ok = naming.is_dns_1123_subdomain(str(value)) if key == "pod_priority_class" else _is_name(str(value))
        if not ok:
            limit = "" if key == "pod_priority_class" else ", at most 63 characters"
            found.add(
                f"launcher.{key}={value!r} is not a valid {what} name: expected a DNS-1123 subdomain (lowercase "
                f"letters, digits, '-' and '.', starting and ending with a letter or digit{limit}), e.g. {example}.",
                f"launcher.{key}",
            )
    for key, label in _LABEL_OF.items():
        if label in (launcher.get("labels") or {}):
            found.add(
                f"launcher.labels.{label} would put a Kueue label on the pods as well as the job: expected "
                f"launcher.{key}={launcher.labels[label]} instead, which labels the job object only.",
                f"launcher.labels.{label}",
            )


# ------------------------------------------------------------------ reading a queued job

def queue_of(obj: dict[str, Any]) -> Optional[str]:
    """The LocalQueue the object was submitted to; None when it names none."""
    return ((obj.get("metadata") or {}).get("labels") or {}).get(QUEUE_LABEL)


def queued_since(obj: dict[str, Any]) -> Optional[str]:
    """When the object was last suspended (its True ``Suspended`` condition), else its creation."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Suspended" and cond.get("status") == "True" and cond.get("lastTransitionTime"):
            return cond["lastTransitionTime"]
    return (obj.get("metadata") or {}).get("creationTimestamp")


def _seconds_since(stamp: Optional[str], now: Optional[float]) -> Optional[float]:
    try:
        then = timegm(time.strptime(str(stamp)[:19], "%Y-%m-%dT%H:%M:%S"))
    except (TypeError, ValueError):
        return None
    return max(0.0, (time.time() if now is None else now) - then)


def duration(seconds: float) -> str:
    """4s, 3m12s, 2h05m, 1d03h."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def where(obj: dict[str, Any]) -> str:
    """``queued in LocalQueue team-a``, or ``suspended`` for an object that names no queue."""
    queue = queue_of(obj)
    return f"queued in LocalQueue {queue}" if queue else f"suspended (no {QUEUE_LABEL} label)"


def waiting(obj: dict[str, Any], pods: int = 0, now: Optional[float] = None) -> str:
    """The reason of a queued job: where it waits, for how long, and pods still stopping."""
    since = queued_since(obj)
    seconds = _seconds_since(since, now)
    text = where(obj)
    if seconds is not None:
        text += f" for {duration(seconds)} (since {since})"
    if pods:
        text += f"; {pods} pod{'s' if pods != 1 else ''} of its last admission still stopping"
    return text


def requeued(obj: dict[str, Any]) -> str:
    """The follower's one line when a running job is suspended again."""
    queue = queue_of(obj)
    if queue:
        return (f"preempted by Kueue, requeued in LocalQueue {queue}: its pods were stopped and the next "
                "admission resumes from last.ckpt in the same run dir")
    return "suspended while running: its pods were stopped; resuming it continues from last.ckpt"


def admitted(obj: dict[str, Any], since: Optional[str], now: Optional[float] = None) -> str:
    """The follower's line when a queued job is let go; ``since``: when it was seen queued (the
    object no longer says once its ``Suspended`` condition has turned False)."""
    queue = queue_of(obj)
    seconds = _seconds_since(since, now)
    after = f" after {duration(seconds)}" if seconds is not None else ""
    return f"admitted by Kueue from LocalQueue {queue}{after}" if queue else f"resumed{after}"
