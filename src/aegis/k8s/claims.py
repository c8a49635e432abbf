"""The PersistentVolumeClaims a job mounts, checked on the cluster before the job is created.

A missing claim keeps every pod Pending with nothing but a FailedScheduling event, and a
ReadWriteOnce claim shared by pods on several nodes fails on the second node's
Multi-Attach, after the first pods have started. Both are known before anything is
created, so submitting asks the API server about each claim first: one sentence per
problem, naming the config key. A service account that may not read claims (403) only
skips the check, with a warning: reading claims is not a permission training needs. On a
cluster of one node (kind, minikube) pods cannot span nodes, so ReadWriteOnce is enough.

``needed`` is pure and runs when the object is rendered; ``check`` runs on submission
with a reachable cluster (never for ``launcher.dry_run``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from omegaconf import DictConfig

from aegis.errors import Problems
from aegis.k8s import pod

if TYPE_CHECKING:
    from aegis.k8s.client import Cluster

SHARED = "ReadWriteMany"
READ_SHARED = "ReadOnlyMany"
ONE_NODE = "ReadWriteOnce"  # every pod on one node may mount it (ReadWriteOncePod: one pod only)
# What `kubectl apply` creates the default claims from (aegis.generate).
CLAIMS_FILE = "k8s/pvc-dataset-cache.yaml"


@dataclass(frozen=True)
class Claim:
    key: str  # the config key that names it, e.g. launcher.outputs.claim
    name: str
    read_only: bool
    spans_nodes: bool  # pods of the job may run on several nodes and all mount it

    def modes_ok(self, modes: list[str]) -> bool:
        """Access modes that let every pod of the job mount it (any, for pods on one node)."""
        if not self.spans_nodes:
            return True
        return SHARED in modes or (self.read_only and READ_SHARED in modes)


def needed(cfg: DictConfig, spans_nodes: bool) -> list[Claim]:
    """The claims the rendered pods mount: outputs, and the dataset cache when the data uses it."""
    launcher = cfg.launcher
    found = []
    if launcher.outputs.claim is not None:
        found.append(Claim("launcher.outputs.claim", str(launcher.outputs.claim), False, spans_nodes))
    if pod.mounts_dataset_cache(cfg):
        cache = launcher.dataset_cache
        found.append(Claim("launcher.dataset_cache.claim", str(cache.claim), bool(cache.read_only), spans_nodes))
    return found


def check(cluster: "Cluster", namespace: str, claims: list[Claim]) -> None:
    """Raise one sentence per claim that is missing, or too narrow for pods on several nodes."""
    from aegis.k8s.client import ClusterError

    found = Problems()
    nodes: list[Optional[int]] = []  # the cluster's node count, asked once and only when it matters

    def one_node() -> bool:
        if not nodes:
            nodes.append(cluster.node_count())
        return nodes[0] == 1

    for claim in claims:
        try:
            obj = cluster.claim(claim.name, namespace)
        except ClusterError as exc:
            if getattr(exc, "status", None) != 403:
                raise
            print(f"[k8s] warning: kube context {cluster.context} may not read PersistentVolumeClaims in namespace "
                  f"{namespace} (403), so {claim.key}={claim.name} was not checked before submitting",
                  file=sys.stderr, flush=True)
            continue
        if obj is None:
            cluster.namespace(namespace)  # a missing namespace is the sentence to give, when it is that
            found.add(
                f"{claim.key}={claim.name} does not exist in namespace {namespace} of kube context {cluster.context}: "
                f"create it (kubectl apply -n {namespace} -f {CLAIMS_FILE} creates the default claims, "
                f"ReadWriteMany) or set {claim.key} to an existing claim.", claim.key
            )
            continue
        modes = access_modes(obj)
        if not claim.modes_ok(modes) and not (ONE_NODE in modes and one_node()):
            wanted = f"{SHARED} (or {READ_SHARED}, as it is read only)" if claim.read_only else SHARED
            found.add(
                f"{claim.key}={claim.name} allows {', '.join(modes) or 'no access mode'}, but the pods of this job "
                f"can run on different nodes and each mounts it, so all but the first node's would fail to attach "
                f"it: expected a {wanted} claim (NFS, CephFS, EFS, Filestore...), or pods on one node.", claim.key
            )
    found.raise_if_any()


def access_modes(obj: dict) -> list[str]:
    """The claim's access modes: its bound volume's (status) once bound, else those asked for."""
    status = (obj.get("status") or {}).get("accessModes")
    return list(status or (obj.get("spec") or {}).get("accessModes") or [])
