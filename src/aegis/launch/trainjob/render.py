"""The TrainJob: ``runtimeRef`` to a torch runtime, the ``trainer`` (image, the gang's command,
env, resources, the node and process counts) and one ``runtimePatches`` entry carrying what a
pod needs beyond that: the volumes and their mounts, the security contexts, the grace period,
placement and the pod labels.

The container and pod are built by ``aegis.k8s.pod`` exactly as for the other launchers, then
split between the two places a TrainJob accepts them, so a TrainJob pod runs what a
PyTorchJob pod runs: the same run dir, checkpoints, resume and tracking.
"""

from __future__ import annotations

from typing import Any, Optional

from omegaconf import DictConfig

from aegis.k8s import naming, pod
from aegis.k8s.manifests import Plan, plan
from aegis.launch.base import RunContext
from aegis.launch.trainjob.kind import CONTAINER, REPLICATED_JOB, TRAINJOB, max_name_length

MANAGER = "aegis.dev/launcher"  # the runtimePatches entry's owner (a domain-prefixed path, as Kueue's)
# Pod-level fields a runtimePatches entry may set (CRD v2.3.0), in the order pod.pod_spec writes them.
POD_FIELDS = ("terminationGracePeriodSeconds", "serviceAccountName", "securityContext", "nodeSelector",
              "tolerations", "imagePullSecrets", "volumes")


def name_for(cfg: DictConfig, ctx: RunContext, nonce: Optional[str] = None) -> str:
    """``launcher.job_name``, or ``<task>-<run>`` short enough for every node's pod name."""
    launcher = cfg.launcher
    if launcher.job_name is not None:
        return str(launcher.job_name)
    limit = min(naming.MAX_JOB_NAME, max_name_length(launcher.nodes))
    return naming.job_name(str(cfg.task_name), ctx.run_id, nonce, limit=limit)


def render_trainjob(cfg: DictConfig, ctx: RunContext, nonce: Optional[str] = None) -> Plan:
    launcher = cfg.launcher
    name = name_for(cfg, ctx, nonce)
    replace = {} if cfg.strategy.name == "ddp" else {"strategy": "ddp"}
    # torchrun takes nnodes, node rank, master address/port and nproc from the PET_* variables
    # the torch plugin injects into the node container: no rendezvous flags. The gang's
    # supervisor in front turns a preempted gang's exit into 143 (aegis.launch.gang).
    args = [launcher.python, "-m", "aegis.launch.gang", "torchrun", *pod.entry_args(cfg, ctx),
            *pod.pod_overrides(cfg, ctx, **replace)]
    main = pod.container(cfg, CONTAINER, args, procs=launcher.nproc_per_node, ctx=ctx)
    spec = pod.pod_spec(cfg, main, restart_policy=None)

    trainer: dict[str, Any] = {
        "numNodes": launcher.nodes,
        "numProcPerNode": launcher.nproc_per_node,
        "image": main["image"],
        # args, not command: the image's ENTRYPOINT (tini) stays PID 1 and forwards SIGTERM.
        "args": main["args"],
        "env": main["env"],
    }
    if main.get("resources"):
        trainer["resourcesPerNode"] = main["resources"]
    container_patch = {"name": CONTAINER, "securityContext": main["securityContext"],
                       "volumeMounts": main["volumeMounts"]}
    pod_patch: dict[str, Any] = {k: spec[k] for k in POD_FIELDS if k in spec}
    pod_patch["containers"] = [container_patch]
    patch = {
        "manager": MANAGER,
        "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [{
            "name": REPLICATED_JOB,
            "template": {"spec": {"template": {
                "metadata": {"labels": pod.labels(cfg, name, ctx.run_id),
                             "annotations": pod.annotations(cfg, ctx.run_id)},
                "spec": pod_patch,
            }}},
        }]}}},
    }
    job_spec: dict[str, Any] = {
        "runtimeRef": {"apiGroup": TRAINJOB.group, "kind": launcher.runtime_kind, "name": launcher.runtime},
        "trainer": trainer,
        "runtimePatches": [patch],
    }
    if launcher.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = launcher.active_deadline_seconds
    return plan(cfg, ctx, TRAINJOB, name, job_spec)
