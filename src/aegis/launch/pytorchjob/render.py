"""The PyTorchJob: a Master and ``nodes - 1`` Workers, each ``torchrun train.py`` driven by the
operator's ``PET_*`` variables."""

from __future__ import annotations

import contextlib
import secrets
from typing import Any, Iterator, Optional

from omegaconf import DictConfig

from aegis.k8s import pod
from aegis.k8s.manifests import Plan, job_name, plan
from aegis.k8s.prefetch import CONTAINER as PREFETCH_CONTAINER
from aegis.launch import restart_budget as budget
from aegis.launch.base import RunContext
from aegis.launch.pytorchjob.kind import ELASTIC_LABEL, PYTORCHJOB

_PINNED_TOKEN: Optional[str] = None  # set by fixed_submission_token (the checked-in manifests)


@contextlib.contextmanager
def fixed_submission_token(token: str) -> Iterator[None]:
    """Render ``token`` instead of a random one: output that must be the same every time
    (``aegis.generate``'s checked-in manifests; a job created twice from one such file
    shares its restart budget)."""
    global _PINNED_TOKEN
    before, _PINNED_TOKEN = _PINNED_TOKEN, token
    try:
        yield
    finally:
        _PINNED_TOKEN = before


def budget_env(cfg: DictConfig, ctx: RunContext, name: str) -> list[dict[str, Any]]:
    """What a pod needs to keep the PyTorchJob's restart budget itself (``aegis.launch.
    restart_budget``): the operator never enforces ``runPolicy.backoffLimit`` under
    ``restartPolicy: ExitCode``. The folder is this submission's own (a new token each time),
    so resubmitting a run starts a new budget."""
    token = _PINNED_TOKEN if _PINNED_TOKEN is not None else secrets.token_hex(3)
    folder = f"{pod.pod_run_dir(cfg, ctx.run_id)}/{budget.ATTEMPTS_FOLDER}/{name}-{token}"
    return [
        {"name": budget.MAX_ATTEMPTS_ENV, "value": str(int(cfg.launcher.max_restarts) + 1)},
        {"name": budget.ATTEMPTS_DIR_ENV, "value": folder},
        {"name": budget.POD_NAME_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": budget.POD_UID_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
    ]


def _with_budget(spec: dict[str, Any], env: list[dict[str, Any]]) -> dict[str, Any]:
    """The pod spec whose ``prefetch-data`` init container counts the pod's attempt first (it runs
    before training, and fails the pod just as well) and steps aside once they are spent."""
    for container in spec.get("initContainers", []):
        if container["name"] == PREFETCH_CONTAINER:
            container["env"] = [*container.get("env", []), *env]
            python = container["args"][0]  # launcher.python, as the command itself starts
            container["args"] = [python, "-m", "aegis.launch.restart_budget", "--", *container["args"]]
    return spec


def render_pytorchjob(cfg: DictConfig, ctx: RunContext, nonce: Optional[str] = None) -> Plan:
    launcher = cfg.launcher
    name = job_name(cfg, ctx, nonce)
    # torchrun takes nnodes, node rank, master address/port and nproc from the PET_*
    # variables the operator injects into every pod: no rendezvous flags here.
    replace = {} if cfg.strategy.name == "ddp" else {"strategy": "ddp"}
    # The gang's supervisor in front of torchrun: torchrun exits 1 when stopped, which
    # restartPolicy ExitCode would take for a bug; the supervisor exits 143 (retryable)
    # when the ranks were preempted or lost a peer, and passes on a rank's own failure.
    command = [launcher.python, "-m", "aegis.launch.gang", "torchrun", *pod.entry_args(cfg, ctx),
               *pod.pod_overrides(cfg, ctx, **replace)]
    main = pod.container(cfg, PYTORCHJOB.container, command, procs=launcher.nproc_per_node, ctx=ctx)
    attempts_env = budget_env(cfg, ctx, name)  # one folder for the whole gang: Master and Workers
    main["env"] = [*main["env"], *attempts_env]

    labels = pod.labels(cfg, name, ctx.run_id)
    if launcher.elastic.enabled:  # the rendezvous numbers its nodes, not the replica labels
        labels[ELASTIC_LABEL] = "true"

    def replica(replicas: int) -> dict[str, Any]:
        return {
            "replicas": replicas,
            # Exit codes 128+ (SIGTERM preemption, SIGKILL/OOM) restart the pod, which
            # resumes from last.ckpt; any other failure (a bug, bad data) fails the job.
            "restartPolicy": "ExitCode",
            "template": {
                "metadata": {"labels": labels, "annotations": pod.annotations(cfg, ctx.run_id)},
                "spec": _with_budget(pod.pod_spec(cfg, main, restart_policy=None), attempts_env),
            },
        }

    replicas = {"Master": replica(1)}
    if launcher.nodes > 1:
        replicas["Worker"] = replica(launcher.nodes - 1)
    # backoffLimit for an operator that enforces it; v1.9.4 does not under ExitCode (the pods do).
    run_policy: dict[str, Any] = {"cleanPodPolicy": launcher.clean_pod_policy, "backoffLimit": launcher.max_restarts}
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
    return plan(cfg, ctx, PYTORCHJOB, name, spec)
