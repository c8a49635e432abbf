"""The RayJob: the search's entrypoint, a Ray cluster to run it on (a head group and one worker
group on the training image, each pod built by ``aegis.k8s.pod`` as every launcher's pod is:
the outputs claim, the dataset cache, /dev/shm, the security contexts, the labels), and a
submitter pod template so the pod that submits and follows the search is Aegis's too.

KubeRay writes the Ray containers' command itself (``ulimit -n 65536; ray start --head ...``,
``ray start --address=<head>:6379 ...``, from ``rayStartParams`` and the container's
resources) and the submitter's (``ray job submit ... -- <entrypoint>``), so none is rendered.
``shutdownAfterJobFinishes`` is always true: the cluster goes when the search ends (Kueue
requires it), ``ttlSecondsAfterFinished`` later; ``suspend`` is never rendered (Kueue's).

A pod's SIGTERM reaches that ``ray start``, never the search, so the head and worker containers
carry a preStop hook (``aegis.tune.prestop``) that stops the search as a local SIGTERM does,
within ``terminationGracePeriodSeconds`` (launcher.termination_grace_period_s, at least
``MIN_GRACE_S`` for a RayJob: checks). ``rayVersion`` makes KubeRay inject HTTP probes
(``/api/healthz`` on the dashboard agent), which the image answers; it has no wget for the exec
probes KubeRay injects for Ray before 2.53, so such a version is refused (checks).
"""

from __future__ import annotations

import importlib.metadata
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from aegis.core import quantities
from aegis.k8s import builds, naming, pod
from aegis.k8s.manifests import Plan, plan
from aegis.core.context import RunContext, override_key, quote_override
from aegis.launch.rayjob.entrypoint import entrypoint
from aegis.launch.rayjob.kind import (CONTAINER, HEAD, MAX_NAME_LENGTH, RAYJOB, ROLE_LABEL, SUBMITTER, WORKER,
                                      WORKER_GROUP)

# Ray's object store lives in /dev/shm when it fits there, else in /tmp (on disk, slow, with a
# warning): it gets this share of launcher.shm_size, the rest left to DataLoader workers and Ray.
OBJECT_STORE_SHARE = Decimal("0.8")
OBJECT_STORE_MINIMUM = 75 * 1024 * 1024  # ray_constants.OBJECT_STORE_MINIMUM_MEMORY_BYTES
# The submitter only runs `ray job submit` and follows the log: KubeRay's own default submitter size.
SUBMITTER_RESOURCES = {"requests": {"cpu": "500m", "memory": "200Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
# Pod-spec fields the submitter keeps from the training pod (not its volumes or init containers).
# The Ray pods' preStop command: `python -m aegis.tune.prestop <sweep dir>`.
PRESTOP_MODULE = "aegis.tune.prestop"
SUBMITTER_POD_FIELDS = ("serviceAccountName", "automountServiceAccountToken", "securityContext", "priorityClassName",
                        "nodeSelector", "tolerations", "imagePullSecrets")


def ray_version(cfg: DictConfig) -> Optional[str]:
    """The Ray in ``launcher.image``: ``launcher.ray_version``, else what docker/build.sh recorded for
    the image, else the Ray installed here (this project pins the image's and this machine's Ray
    to the same release); None when none is known. Read from package metadata: Ray is not imported."""
    if cfg.launcher.ray_version is not None:
        return str(cfg.launcher.ray_version)
    build = builds.lookup(str(cfg.launcher.image))
    if build is not None and build.ray_version is not None:
        return build.ray_version
    try:
        return importlib.metadata.version("ray")
    except importlib.metadata.PackageNotFoundError:
        return None


def name_for(cfg: DictConfig, ctx: RunContext, nonce: Optional[str] = None) -> str:
    """``launcher.job_name``, or ``<task>-<run>`` within KubeRay's 47 characters."""
    if cfg.launcher.job_name is not None:
        return str(cfg.launcher.job_name)
    return naming.job_name(str(cfg.task_name), ctx.run_id, nonce, limit=min(naming.MAX_JOB_NAME, MAX_NAME_LENGTH))


def pod_sweep_dir(cfg: DictConfig, run_id: str) -> str:
    """The search's sweep dir inside every pod, on the outputs volume: trials' run dirs,
    best.yaml and the plot land where the local search would put them under ``paths.root``."""
    return str(PurePosixPath(cfg.launcher.outputs.mount_path) / str(cfg.task_name) / "multiruns" / run_id)


def search_overrides(cfg: DictConfig, ctx: RunContext) -> list[str]:
    """The user's overrides for the search in the cluster: ``launcher=local``, the run id, root and
    sweep dir pinned on the outputs volume, and the sweeper pointed at the in-cluster Ray."""
    pinned = {"launcher": "local", "run_id": ctx.run_id, "paths.root": str(cfg.launcher.outputs.mount_path),
              "hydra.sweep.dir": pod_sweep_dir(cfg, ctx.run_id), "hydra.sweeper.address": "auto"}
    kept = [o for o in ctx.task_overrides
            if override_key(o).split(".")[0] not in pinned and override_key(o) not in pinned]
    return kept + [f"{key}={quote_override(value)}" for key, value in pinned.items()]


def command(cfg: DictConfig, ctx: RunContext) -> list[str]:
    """``python train.py <the search's overrides>``: exactly the local search, on the cluster's Ray."""
    return [cfg.launcher.python, *pod.entry_args(cfg, ctx), *search_overrides(cfg, ctx)]


def object_store_bytes(shm_size: Optional[str]) -> Optional[int]:
    """Ray's object store for a /dev/shm of ``shm_size``; None without one (Ray decides)."""
    if shm_size is None:
        return None
    return int(quantities.parse(shm_size) * OBJECT_STORE_SHARE)


def pre_stop(cfg: DictConfig, sweep_dir: str) -> dict[str, Any]:
    """The Ray containers' preStop hook (``aegis.tune.prestop``): before the kubelet's SIGTERM
    (KubeRay deleting the cluster on a Kueue suspension or ``aegis cancel``), the search's driver
    takes its SIGTERM path (state saved, trials recorded interrupted) and the node's trials end."""
    return {"preStop": {"exec": {"command": [cfg.launcher.python, "-m", PRESTOP_MODULE, sweep_dir]}}}


def _ray_container(cfg: DictConfig, ctx: RunContext, resources: DictConfig) -> dict[str, Any]:
    """The Ray container of a head or worker pod: the training container, less what KubeRay or
    Ray set (the command; OMP_NUM_THREADS, which Ray sets per trial to the trial's CPUs), with
    the preStop hook that lets the search stop before the pod does."""
    main = pod.container(cfg, CONTAINER, [], ctx=ctx)
    del main["args"]
    main["env"] = [e for e in main["env"] if e["name"] != "OMP_NUM_THREADS"]
    main["lifecycle"] = pre_stop(cfg, pod_sweep_dir(cfg, ctx.run_id))
    sized = pod.resources(OmegaConf.create({"launcher": {"resources": resources}}))
    main.pop("resources", None)
    if sized:
        main["resources"] = sized
    return main


def _template(cfg: DictConfig, role: str, labels: dict[str, str], annotations: dict[str, str],
              spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"labels": {**labels, ROLE_LABEL: role}, "annotations": annotations}, "spec": spec}


def _start_params(cfg: DictConfig, num_cpus: Optional[int] = None) -> dict[str, str]:
    params: dict[str, str] = {}
    store = object_store_bytes(cfg.launcher.shm_size)
    if store is not None:
        params["object-store-memory"] = str(store)
    if num_cpus is not None:
        params["num-cpus"] = str(num_cpus)
    return params


def _submitter(cfg: DictConfig, labels: dict[str, str], annotations: dict[str, str],
               training_pod: dict[str, Any], main: dict[str, Any]) -> dict[str, Any]:
    """The submitter pod: the training image (the same Ray), no volumes, restartPolicy Never (the
    Job KubeRay makes of it retries the submission itself, which checks before submitting twice)."""
    container = {"name": CONTAINER, "image": main["image"], "imagePullPolicy": main["imagePullPolicy"],
                 "resources": SUBMITTER_RESOURCES, "securityContext": main["securityContext"]}
    spec: dict[str, Any] = {"restartPolicy": "Never"}
    spec.update({k: training_pod[k] for k in SUBMITTER_POD_FIELDS if k in training_pod})
    spec["containers"] = [container]
    return _template(cfg, SUBMITTER, labels, annotations, spec)


def render_rayjob(cfg: DictConfig, ctx: RunContext, nonce: Optional[str] = None) -> Plan:
    launcher = cfg.launcher
    name = name_for(cfg, ctx, nonce)
    sweep_dir = pod_sweep_dir(cfg, ctx.run_id)
    labels = pod.labels(cfg, name, ctx.run_id)
    annotations = {**pod.annotations(cfg, ctx.run_id), pod.RUN_DIR_ANNOTATION: sweep_dir}

    worker = _ray_container(cfg, ctx, launcher.resources)
    head = _ray_container(cfg, ctx, launcher.head.resources)
    head_pod = pod.pod_spec(cfg, head, restart_policy=None)
    version = ray_version(cfg)  # KubeRay chooses the probes it injects by it (checks refuse None)
    cluster: dict[str, Any] = {"rayVersion": version} if version is not None else {}
    cluster["headGroupSpec"] = {
        "rayStartParams": _start_params(cfg, launcher.head.num_cpus),
        "template": _template(cfg, HEAD, labels, annotations, head_pod),
    }
    if launcher.workers > 0:
        cluster["workerGroupSpecs"] = [{
            "groupName": WORKER_GROUP,
            "replicas": launcher.workers,
            "minReplicas": launcher.workers,
            "maxReplicas": launcher.workers,
            "rayStartParams": _start_params(cfg),
            "template": _template(cfg, WORKER, labels, annotations, pod.pod_spec(cfg, worker, restart_policy=None)),
        }]
    job_spec: dict[str, Any] = {
        "entrypoint": entrypoint(command(cfg, ctx)),
        "submissionMode": "K8sJobMode",
        "shutdownAfterJobFinishes": True,
    }
    if launcher.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = launcher.ttl_seconds_after_finished
    if launcher.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = launcher.active_deadline_seconds
    job_spec["rayClusterSpec"] = cluster
    job_spec["submitterPodTemplate"] = _submitter(cfg, labels, annotations, head_pod, head)
    rendered = plan(cfg, ctx, RAYJOB, name, job_spec)
    rendered.manifest["metadata"]["annotations"][pod.RUN_DIR_ANNOTATION] = sweep_dir
    rendered.pod_run_dir = sweep_dir
    return rendered
