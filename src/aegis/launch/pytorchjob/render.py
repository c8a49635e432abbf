"""The PyTorchJob: a Master and ``nodes - 1`` Workers, each ``torchrun train.py`` driven by the
operator's ``PET_*`` variables."""

from __future__ import annotations

from typing import Any, Optional

from omegaconf import DictConfig

from aegis.k8s import pod
from aegis.k8s.manifests import Plan, job_name, plan
from aegis.launch.base import RunContext
from aegis.launch.pytorchjob.kind import PYTORCHJOB


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
    return plan(cfg, ctx, PYTORCHJOB, name, spec)
