"""What every Kubernetes launcher's rendering shares: the ``Plan`` it returns, the object's
name and metadata, the launcher settings that submitting and following need, and YAML.

Each launcher renders its own object in its folder under ``aegis.launch``: pure
functions of the composed config and the run context, validated before the object is
printed, written or submitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import yaml
from omegaconf import DictConfig

from aegis.k8s import kueue, naming, pod
from aegis.core.context import RunContext

if TYPE_CHECKING:
    from aegis.k8s.kinds import Kind



@dataclass
class Plan:
    """A rendered, validated object plus what submitting and following it needs."""

    manifest: dict[str, Any]
    kind: str  # a name in aegis.k8s.kinds.KINDS
    name: str
    namespace: str
    run_id: str
    run_dir: Path  # on this machine: where the manifest is written
    pod_run_dir: str  # inside the pods, on the outputs volume
    container: str
    settings: dict[str, Any] = field(default_factory=dict)  # context, wait, cancel_on_interrupt, ...

    def to_yaml(self) -> str:
        return to_yaml(self.manifest)

    @property
    def file_name(self) -> str:
        return f"{self.kind.lower()}.yaml"


class _PlainDumper(yaml.SafeDumper):
    """No anchors/aliases: Master and Worker share one container dict, and a manifest
    reads (and diffs) better with each written out in full."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    """A list of numbers (a Job's exit codes) on a few lines, not one line per number."""
    numbers = bool(data) and all(isinstance(v, int) and not isinstance(v, bool) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=numbers)


_PlainDumper.add_representer(list, _represent_list)


def to_yaml(manifest: dict[str, Any]) -> str:
    return yaml.dump(manifest, Dumper=_PlainDumper, sort_keys=False, default_flow_style=False, width=120)


def job_name(cfg: DictConfig, ctx: RunContext, nonce: Optional[str] = None) -> str:
    if cfg.launcher.job_name is not None:
        return str(cfg.launcher.job_name)
    return naming.job_name(str(cfg.task_name), ctx.run_id, nonce)


def metadata(cfg: DictConfig, name: str, run_id: str) -> dict[str, Any]:
    """The job object's metadata, the same for every kind: Aegis's labels, the user's, and
    Kueue's queue and priority (``aegis.k8s.kueue``)."""
    return {
        "name": name,
        "namespace": cfg.launcher.namespace,
        # the Kueue labels on the object only (Kueue reads them there), never on its pods
        "labels": {**pod.labels(cfg, name, run_id), **kueue.labels(cfg)},
        "annotations": pod.annotations(cfg, run_id),
    }


def plan(cfg: DictConfig, ctx: RunContext, kind: "Kind", name: str, spec: dict[str, Any]) -> Plan:
    """The object of ``kind`` around its ``spec``, and what submitting and following it needs:
    every launcher's renderer ends here, so no two build the object differently."""
    manifest = {"apiVersion": kind.api_version, "kind": kind.name, "metadata": metadata(cfg, name, ctx.run_id),
                "spec": spec}
    return Plan(manifest, kind.name, name, cfg.launcher.namespace, ctx.run_id, ctx.run_dir,
                pod.pod_run_dir(cfg, ctx.run_id), kind.container, settings(cfg))


def settings(cfg: DictConfig) -> dict[str, Any]:
    keys = ("context", "dry_run", "server_dry_run", "wait", "cancel_on_interrupt", "poll_interval_s",
            "pending_timeout_s")
    return {k: pod.plain(cfg.launcher[k]) for k in keys}

