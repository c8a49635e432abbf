"""The pod both Kubernetes launchers run: container, env, volumes, security.

The container re-enters the same entrypoint with the user's overrides and the in-process
launcher (``registry.IN_PROCESS``); its run dir is pinned to a path on the outputs volume, because the
pod cannot see this machine's run dir. Pure: no cluster, no client, no torch.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import PurePosixPath
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from aegis import __version__
from aegis.core import logger_kind, quantities
from aegis.k8s import builds, naming, prefetch
from aegis.core.context import RunContext
from aegis.core.launch_origin import IMAGE_COMMIT_ENV, IMAGE_DIRTY_ENV, IMAGE_ENV, NODE_NAME_ENV, launch_env
from aegis.core.lifecycle import SUPERVISED_ENV
from aegis.core.rank_notes import GRACE_ENV
from aegis.core.registry import IN_PROCESS

log = logging.getLogger("aegis.k8s")

RUN_ID_LABEL = "aegis.dev/run-id"
TASK_LABEL = "aegis.dev/task"
RUN_DIR_ANNOTATION = "aegis.dev/run-dir"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"


def plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def pod_run_dir(cfg: DictConfig, run_id: str) -> str:
    """Where the run lives inside every pod: on the outputs volume, one dir per run."""
    return str(PurePosixPath(cfg.launcher.outputs.mount_path) / cfg.task_name / "runs" / run_id)


def pod_overrides(cfg: DictConfig, ctx: RunContext, **replace: str) -> list[str]:
    """The user's overrides for the pod: the in-process launcher (``registry.IN_PROCESS``), run dir
    and root pinned in the pod."""
    in_pod = dataclasses.replace(ctx, run_dir=PurePosixPath(pod_run_dir(cfg, ctx.run_id)))
    return in_pod.child_overrides(launcher=IN_PROCESS, **replace, **{"paths.root": cfg.launcher.outputs.mount_path})


def entry_args(cfg: DictConfig, ctx: RunContext) -> list[str]:
    """The entrypoint and Hydra flags inside the image (its own conf/, so no --config-dir)."""
    if ctx.config_dirs:
        log.warning("--config-dir %s is not passed to the pod: the image's conf/ must contain what it adds",
                    ", ".join(ctx.config_dirs))
    args = [cfg.launcher.entrypoint]
    if ctx.config_name != "train":
        args.append(f"--config-name={ctx.config_name}")
    return args


def labels(cfg: DictConfig, name: str, run_id: str) -> dict[str, str]:
    launcher = cfg.launcher
    return {
        "app.kubernetes.io/name": "aegis",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": "training",
        "app.kubernetes.io/part-of": "aegis",
        "app.kubernetes.io/managed-by": "aegis",
        "app.kubernetes.io/version": naming.label_value(__version__),
        RUN_ID_LABEL: naming.label_value(run_id) or "run",
        TASK_LABEL: naming.label_value(str(cfg.task_name)) or "task",
        **{str(k): str(v) for k, v in plain(launcher.labels).items()},
    }


def annotations(cfg: DictConfig, run_id: str) -> dict[str, str]:
    return {
        RUN_ID_LABEL: run_id,
        RUN_DIR_ANNOTATION: pod_run_dir(cfg, run_id),
        **{str(k): str(v) for k, v in plain(cfg.launcher.annotations).items()},
    }


def _threads(cpu: Optional[str], procs: int) -> Optional[str]:
    """OMP threads per process from the CPU request; torch otherwise uses every node core."""
    if cpu is None:
        return None
    return str(max(1, math.floor(float(quantities.parse(cpu)) / procs)))


def mounts_dataset_cache(cfg: DictConfig) -> bool:
    """The dataset cache claim is mounted only for data that says it uses one: a claim the
    run never reads would still have to exist, and attach, before the pod can start."""
    data = cfg.get("data")
    return cfg.launcher.dataset_cache.claim is not None and bool(data is not None and data.get("uses_dataset_cache"))


def image(cfg: DictConfig) -> str:
    """``launcher.image``, pinned to the registry digest docker/build.sh recorded for that tag
    (``name:tag@sha256:...``), so a tag re-pointed by a later build cannot change what runs."""
    reference = str(cfg.launcher.image)
    build = builds.lookup(reference)
    pinned = build.pinned() if build is not None else None
    return pinned or reference


def image_notice(cfg: DictConfig) -> Optional[str]:
    """One line for the submitter when the manifest pins ``launcher.image`` to a recorded digest."""
    pinned = image(cfg)
    if pinned == str(cfg.launcher.image):
        return None
    return (f"image: launcher.image={cfg.launcher.image} is pinned to {pinned}, the registry digest "
            f"docker/build.sh recorded in {builds.records_file()}")


def env(cfg: DictConfig, procs: int = 1, ctx: Optional[RunContext] = None) -> list[dict[str, Any]]:
    """The container's env. For the run's lineage (aegis.core.launch_origin): the image as this
    manifest pins it, the launch the user asked for (with ``ctx``), and the pod's node
    through the downward API."""
    launcher = cfg.launcher
    values: dict[str, str] = {"PYTHONUNBUFFERED": "1", "AEGIS_OUTPUT_ROOT": launcher.outputs.mount_path,
                              GRACE_ENV: str(launcher.termination_grace_period_s),
                              # the job is the cluster object (job.json on the submitting side):
                              # the pod's run never claims the run dir as a local process
                              SUPERVISED_ENV: "1", IMAGE_ENV: image(cfg)}
    if ctx is not None:
        values.update(launch_env(str(launcher.name), ctx))
    build = builds.lookup(str(launcher.image))
    if build is not None and build.revision:  # the image has no .git: its code is the commit it was built from
        values.update({IMAGE_COMMIT_ENV: build.revision, IMAGE_DIRTY_ENV: "true" if build.dirty else "false"})
    if mounts_dataset_cache(cfg):
        values["AEGIS_DATASET_CACHE"] = launcher.dataset_cache.mount_path
    threads = _threads(launcher.resources.cpu, procs)
    if threads is not None:
        values["OMP_NUM_THREADS"] = threads
    values.update({str(k): str(v) for k, v in plain(launcher.env).items()})
    out: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in values.items()]
    if NODE_NAME_ENV not in values:
        out.append({"name": NODE_NAME_ENV, "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}})
    for key, ref in plain(launcher.secret_env).items():
        secret, _, secret_key = str(ref).partition("/")
        out.append({"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": secret_key}}})
    return out


def tracking_notice(cfg: DictConfig) -> Optional[str]:
    """Where the pods' MLflow tracking goes when the config names no server, as one line for
    the submitter; None when it does (or the run does not use MLflow).

    The pods never inherit the submitting machine's $MLFLOW_TRACKING_URI: it may name a
    store only that machine can reach, and its credentials would land in the manifest. So
    without ``logger.tracking_uri`` or an ``MLFLOW_TRACKING_URI`` in the pod env, each pod
    logs to the embedded SQLite store on its outputs volume, which this line makes plain."""
    logger = cfg.get("logger")
    if not logger_kind.of(logger).mlflow or logger.get("tracking_uri"):
        return None
    launcher = cfg.launcher
    if TRACKING_URI_ENV in plain(launcher.env) or TRACKING_URI_ENV in plain(launcher.secret_env):
        return None
    outputs = launcher.outputs
    if outputs.claim is not None:
        volume = f"PersistentVolumeClaim {outputs.claim}"
    elif outputs.host_path is not None:
        volume = f"host path {outputs.host_path} of the pod's node"
    else:
        volume = "an emptyDir, deleted with the pod"
    unless = f" (unless a launcher.env_from Secret sets {TRACKING_URI_ENV})" if launcher.env_from else ""
    return (f"pods log to MLflow in SQLite at {PurePosixPath(outputs.mount_path) / 'mlflow.db'} on the outputs "
            f"volume ({volume}){unless}; for a server pass logger.tracking_uri=http://... or "
            f"+launcher.env.{TRACKING_URI_ENV}=... (credentials from a Secret: docs/tracking.md)")


def resources(cfg: DictConfig) -> dict[str, Any]:
    res = cfg.launcher.resources
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if res.cpu is not None:
        requests["cpu"] = str(res.cpu)
    if res.memory is not None:
        requests["memory"] = str(res.memory)
    if res.ephemeral_storage is not None:
        requests["ephemeral-storage"] = str(res.ephemeral_storage)
    if res.cpu_limit is not None:
        limits["cpu"] = str(res.cpu_limit)
    memory_limit = res.memory_limit if res.memory_limit is not None else res.memory
    if memory_limit is not None:
        limits["memory"] = str(memory_limit)
    if res.gpu:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(res.gpu)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def volumes(cfg: DictConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(pod volumes, container mounts): outputs, dataset cache, /dev/shm, /tmp."""
    launcher = cfg.launcher
    outputs = launcher.outputs
    if outputs.claim is not None:
        source: dict[str, Any] = {"persistentVolumeClaim": {"claimName": outputs.claim}}
    elif outputs.host_path is not None:
        source = {"hostPath": {"path": outputs.host_path, "type": "DirectoryOrCreate"}}
    else:
        source = {"emptyDir": {}}
    vols = [{"name": "outputs", **source}]
    mounts = [{"name": "outputs", "mountPath": outputs.mount_path}]
    cache = launcher.dataset_cache
    if mounts_dataset_cache(cfg):
        vols.append({"name": "dataset-cache", "persistentVolumeClaim": {"claimName": cache.claim, "readOnly": cache.read_only}})
        mounts.append({"name": "dataset-cache", "mountPath": cache.mount_path, "readOnly": cache.read_only})
    if launcher.shm_size is not None:
        vols.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": str(launcher.shm_size)}})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    if launcher.security.read_only_root_filesystem:
        vols.append({"name": "tmp", "emptyDir": {}})
        mounts.append({"name": "tmp", "mountPath": "/tmp"})
    return vols, mounts


def container(cfg: DictConfig, name: str, args: list[str], procs: int = 1,
              ctx: Optional[RunContext] = None) -> dict[str, Any]:
    """The training container. The training command is its ``args``, not its ``command``: the
    image's ENTRYPOINT (an init, tini) stays PID 1 and forwards SIGTERM to the run, which
    as PID 1 itself would get no default signal handling and miss a SIGTERM at start-up."""
    launcher = cfg.launcher
    vols, mounts = volumes(cfg)
    spec: dict[str, Any] = {
        "name": name,
        "image": image(cfg),
        "imagePullPolicy": launcher.image_pull_policy,
        "args": args,
        "env": env(cfg, procs, ctx),
    }
    if launcher.env_from:
        spec["envFrom"] = [{"secretRef": {"name": s}} for s in launcher.env_from]
    if launcher.working_dir is not None:
        spec["workingDir"] = launcher.working_dir
    res = resources(cfg)
    if res:
        spec["resources"] = res
    spec["volumeMounts"] = mounts
    spec["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": bool(launcher.security.read_only_root_filesystem),
        "capabilities": {"drop": ["ALL"]},
    }
    return spec


def pod_spec(cfg: DictConfig, main: dict[str, Any], restart_policy: Optional[str]) -> dict[str, Any]:
    launcher = cfg.launcher
    sec = launcher.security
    vols, _ = volumes(cfg)
    spec: dict[str, Any] = {}
    if restart_policy is not None:
        spec["restartPolicy"] = restart_policy
    spec["terminationGracePeriodSeconds"] = launcher.termination_grace_period_s
    if launcher.service_account is not None:
        spec["serviceAccountName"] = launcher.service_account
    else:
        spec["automountServiceAccountToken"] = False  # training never talks to the API server
    pod_security: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": sec.run_as_user,
        "runAsGroup": sec.run_as_group,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if sec.fs_group is not None:
        pod_security["fsGroup"] = sec.fs_group
    spec["securityContext"] = pod_security
    if launcher.get("pod_priority_class") is not None:  # without Kueue: the scheduler's priority
        spec["priorityClassName"] = str(launcher.pod_priority_class)
    if launcher.node_selector:
        spec["nodeSelector"] = {str(k): str(v) for k, v in plain(launcher.node_selector).items()}
    if launcher.tolerations:
        spec["tolerations"] = [_toleration(t) for t in plain(launcher.tolerations)]
    if launcher.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in launcher.image_pull_secrets]
    fetch = prefetch.fetch_args(cfg)  # launcher.prefetch_data: the dataset cache filled first
    if fetch is not None:
        init = container(cfg, prefetch.CONTAINER, fetch)
        init["env"] = [e for e in init["env"] if e["name"] != "OMP_NUM_THREADS"]  # one process, no threads to size
        spec["initContainers"] = [init]
    spec["containers"] = [main]
    spec["volumes"] = vols
    return spec


def _toleration(t: dict[str, Any]) -> dict[str, Any]:
    keys = {"key": "key", "operator": "operator", "value": "value", "effect": "effect",
            "toleration_seconds": "tolerationSeconds"}
    return {camel: t[snake] for snake, camel in keys.items() if t.get(snake) is not None}
