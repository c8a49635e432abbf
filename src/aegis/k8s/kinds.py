"""The Kubernetes kinds Aegis submits, each one object that knows everything kind-specific.

The client, the follower and ``status``/``logs``/``cancel`` read a kind's API
coordinates, pod labels, replica names and terminal conditions from here and never
branch on a kind's name. Each launcher folder defines its own kind (``kind.py``) and
the launcher registry names it, so adding a kind (TrainJob, RayJob) touches no module here. Plain data: no kubernetes client, no torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from aegis.errors import AegisError
from aegis.core.lifecycle import State


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
    # Where the object says it is suspended (a queue such as Kueue holds it, no pods run):
    # spec.suspend for a Job, TrainJob, RayJob; a kind that keeps it elsewhere names its path.
    suspend_field: tuple[str, ...] = ("spec", "suspend")
    # A replica type's first node rank (torchrun's --node-rank): PyTorchJob's Master is node 0
    # and Worker i is node i + 1. Empty: the pods carry no node rank (a Job's pod is one attempt).
    node_rank_base: Mapping[str, int] = field(default_factory=dict)

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

    def node_rank(self, pod: dict[str, Any]) -> Optional[int]:
        """The pod's node rank in its gang, from its replica type and index labels; None when
        the kind or the pod does not say."""
        labels = (pod.get("metadata") or {}).get("labels") or {}
        rtype = (labels.get(self.replica_type_label or "") or "").lower()
        index = labels.get(self.replica_index_label or "")
        if rtype not in self.node_rank_base or index is None or not str(index).isdigit():
            return None
        return self.node_rank_base[rtype] + int(index)

    def suspended(self, obj: dict[str, Any]) -> bool:
        """Whether the object is held (by Kueue, or by hand): its suspend flag, or a True
        ``Suspended`` condition while the flag is unset. A flag set to false wins over a
        condition the controller has not yet turned off: the object was just admitted."""
        flag: Any = obj
        for key in self.suspend_field:
            flag = flag.get(key) if isinstance(flag, dict) else None
        if flag is not None:
            return bool(flag)
        return any(c.get("type") == "Suspended" and c.get("status") == "True"
                   for c in (obj.get("status") or {}).get("conditions") or [])

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


def kind_of(name: str) -> Kind:
    """The kind a registered launcher submits (``aegis.core.registry.LAUNCHERS``' ``kind`` entries)."""
    from aegis.core.registry import kinds

    known = kinds()
    if name not in known:
        raise AegisError(f"{name!r} is not a Kubernetes kind Aegis knows: expected one of "
                         f"{', '.join(sorted(known))}.")
    return known[name]


def natural_key(text: str) -> tuple:
    """worker-2 before worker-10."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))
