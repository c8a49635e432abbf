"""Render the two manifests: a batch/v1 Job and a Kubeflow PyTorchJob (kubeflow.org/v1).

Pure functions of the composed config and the run context; the result is validated
(``aegis.k8s.validate``) before it is printed, written or submitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml
from omegaconf import DictConfig

from aegis.k8s import naming, pod
from aegis.k8s.kinds import JOB, PYTORCHJOB
from aegis.launch.base import RunContext

JOB_CONTAINER = JOB.container
PYTORCH_CONTAINER = PYTORCHJOB.container  # the Training Operator finds its container by this name


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


def to_yaml(manifest: dict[str, Any]) -> str:
    return yaml.dump(manifest, Dumper=_PlainDumper, sort_keys=False, default_flow_style=False, width=120)


def job_name(cfg: DictConfig, ctx: RunContext, nonce: Optional[str] = None) -> str:
    if cfg.launcher.job_name is not None:
        return str(cfg.launcher.job_name)
    return naming.job_name(str(cfg.task_name), ctx.run_id, nonce)


def _metadata(cfg: DictConfig, name: str, run_id: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": cfg.launcher.namespace,
        "labels": pod.labels(cfg, name, run_id),
        "annotations": pod.annotations(cfg, run_id),
    }


def _settings(cfg: DictConfig) -> dict[str, Any]:
    keys = ("context", "dry_run", "server_dry_run", "wait", "cancel_on_interrupt", "poll_interval_s")
    return {k: pod.plain(cfg.launcher[k]) for k in keys}


def render_job(cfg: DictConfig, ctx: RunContext, nonce: Optional[str] = None) -> Plan:
    launcher = cfg.launcher
    name = job_name(cfg, ctx, nonce)
    command = [launcher.python, *pod.entry_args(cfg, ctx), *pod.pod_overrides(cfg, ctx)]
    main = pod.container(cfg, JOB_CONTAINER, command)
    template_labels = pod.labels(cfg, name, ctx.run_id)
    spec: dict[str, Any] = {"backoffLimit": launcher.backoff_limit}
    if launcher.active_deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = launcher.active_deadline_seconds
    if launcher.ttl_seconds_after_finished is not None:
        spec["ttlSecondsAfterFinished"] = launcher.ttl_seconds_after_finished
    # A preempted or evicted pod is not the training's fault: it resumes from
    # last.ckpt in the next pod without spending the backoff budget.
    spec["podFailurePolicy"] = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]}
    spec["template"] = {
        "metadata": {"labels": template_labels, "annotations": pod.annotations(cfg, ctx.run_id)},
        "spec": pod.pod_spec(cfg, main, restart_policy="Never"),
    }
    manifest = {"apiVersion": JOB.api_version, "kind": JOB.name, "metadata": _metadata(cfg, name, ctx.run_id), "spec": spec}
    return Plan(manifest, JOB.name, name, launcher.namespace, ctx.run_id, ctx.run_dir,
                pod.pod_run_dir(cfg, ctx.run_id), JOB_CONTAINER, _settings(cfg))


def render_pytorchjob(cfg: DictConfig, ctx: RunContext, nonce: Optional[str] = None) -> Plan:
    launcher = cfg.launcher
    name = job_name(cfg, ctx, nonce)
    # torchrun takes nnodes, node rank, master address/port and nproc from the PET_*
    # variables the operator injects into every pod: no rendezvous flags here.
    replace = {} if cfg.strategy.name == "ddp" else {"strategy": "ddp"}
    command = ["torchrun", *pod.entry_args(cfg, ctx), *pod.pod_overrides(cfg, ctx, **replace)]
    main = pod.container(cfg, PYTORCH_CONTAINER, command, procs=launcher.nproc_per_node)

    def replica(replicas: int) -> dict[str, Any]:
        return {
            "replicas": replicas,
            # Exit codes 128+ (SIGTERM preemption, SIGKILL/OOM) restart the pod, which
            # resumes from last.ckpt; any other failure (a bug, bad data) fails the job.
            "restartPolicy": "ExitCode",
            "template": {
                "metadata": {"labels": pod.labels(cfg, name, ctx.run_id), "annotations": pod.annotations(cfg, ctx.run_id)},
                "spec": pod.pod_spec(cfg, main, restart_policy=None),
            },
        }

    replicas = {"Master": replica(1)}
    if launcher.nodes > 1:
        replicas["Worker"] = replica(launcher.nodes - 1)
    run_policy: dict[str, Any] = {"cleanPodPolicy": launcher.clean_pod_policy, "backoffLimit": launcher.backoff_limit}
    if launcher.ttl_seconds_after_finished is not None:
        run_policy["ttlSecondsAfterFinished"] = launcher.ttl_seconds_after_finished
    if launcher.active_deadline_seconds is not None:
        run_policy["activeDeadlineSeconds"] = launcher.active_deadline_seconds
    spec: dict[str, Any] = {"nprocPerNode": str(launcher.nproc_per_node), "runPolicy": run_policy}
    elastic = launcher.elastic
    if elastic.enabled:
        spec["elasticPolicy"] = {
            "minReplicas": elastic.min_nodes if elastic.min_nodes is not None else launcher.nodes,
            "maxReplicas": elastic.max_nodes if elastic.max_nodes is not None else launcher.nodes,
            "maxRestarts": elastic.max_restarts,
            "rdzvBackend": elastic.rdzv_backend,
        }
    spec["pytorchReplicaSpecs"] = replicas
    manifest = {
        "apiVersion": PYTORCHJOB.api_version,
        "kind": PYTORCHJOB.name,
        "metadata": _metadata(cfg, name, ctx.run_id),
        "spec": spec,
    }
    return Plan(manifest, PYTORCHJOB.name, name, launcher.namespace, ctx.run_id, ctx.run_dir,
                pod.pod_run_dir(cfg, ctx.run_id), PYTORCH_CONTAINER, _settings(cfg))
