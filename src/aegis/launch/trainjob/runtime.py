"""Aegis's training runtime: the ClusterTrainingRuntime ``aegis-torch`` that a TrainJob's
``runtimeRef`` names by default, with the retry rules the README promises.

A TrainJob cannot carry them itself: Trainer v2.3's ``runtimePatches`` take only pod-level
fields, and its Job-level patch only ``template``, so ``restartPolicy``, ``backoffLimit``, a
``podFailurePolicy`` and the JobSet's ``failurePolicy`` belong to the runtime. What they do:

- the node Job (one Job of ``numNodes`` indexed pods) runs its pods with ``restartPolicy: Never``
  and ``backoffLimit: 0``, and its ``podFailurePolicy`` decides for a failed pod, first match
  first: a pod the cluster disrupted (``DisruptionTarget``: preempted, evicted, drained, node
  lost) is replaced without counting; the ``node`` container's own exit 1-127 fails the Job with
  reason ``PodFailurePolicy``; a kill (128-255: 143 after a checkpoint, 137) is counted, which
  with ``backoffLimit: 0`` fails the Job with reason ``BackoffLimitExceeded``;
- the JobSet's ``failurePolicy`` turns a Job failed by ``PodFailurePolicy`` into a failed
  JobSet at once (``FailJobSet``), and one failed by ``BackoffLimitExceeded`` into a restart of
  the whole gang (``RestartJobSet``), at most ``launcher.max_restarts`` times; every pod then
  resumes from ``last.ckpt`` in the pinned run dir.

The pod template never mounts the service-account token (``automountServiceAccountToken:
false``, a field a TrainJob cannot patch): the training never talks to the API server.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from aegis.launch.trainjob.kind import CONTAINER, REPLICATED_JOB, TRAINJOB

NAME = "aegis-torch"  # launcher.runtime's default
FILE = f"clustertrainingruntime-{NAME}.yaml"  # in k8s/, written by python -m aegis.generate
# Trainer marks the replicated job whose `node` container gets the trainer's image, args, env
# and the torch plugin's PET_* (pkg/constants/constants.go: LabelTrainJobAncestor, AncestorTrainer).
ANCESTOR_LABEL = "trainer.kubeflow.org/trainjob-ancestor-step"
ANCESTOR_TRAINER = "trainer"
# A run's own failure (an exception, a NaN loss, a refused config; the gang's supervisor turns a
# lost peer into 143): retrying repeats it. Killed by a signal (143: SIGTERM, last.ckpt written;
# 137: SIGKILL, the OOM killer): the next attempt resumes.
OWN_FAILURE_EXIT_CODES = tuple(range(1, 128))
KILLED_EXIT_CODES = tuple(range(128, 256))
# The JobSet rules' names (JobSet's webhook: ^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$, unique).
RULE_OWN_FAILURE = "RanksOwnFailure"
RULE_KILLED = "KilledOrLostPeer"


def node_job_failure_policy() -> dict[str, Any]:
    """The node Job's podFailurePolicy: the first rule that matches a failed pod decides."""
    def on_exit(action: str, codes: tuple[int, ...]) -> dict[str, Any]:
        return {"action": action, "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": list(codes)}}

    return {"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        on_exit("FailJob", OWN_FAILURE_EXIT_CODES),
        on_exit("Count", KILLED_EXIT_CODES),
    ]}


def jobset_failure_policy(max_restarts: int) -> dict[str, Any]:
    """What the JobSet does with a failed node Job, by the reason the Job failed with."""
    return {
        "maxRestarts": max_restarts,
        "rules": [
            {"name": RULE_OWN_FAILURE, "action": "FailJobSet", "onJobFailureReasons": ["PodFailurePolicy"],
             "targetReplicatedJobs": [REPLICATED_JOB]},
            {"name": RULE_KILLED, "action": "RestartJobSet", "onJobFailureReasons": ["BackoffLimitExceeded"],
             "targetReplicatedJobs": [REPLICATED_JOB]},
        ],
    }


def render_runtime(cfg: DictConfig, image: str) -> dict[str, Any]:
    """The runtime this config's TrainJob needs, of ``launcher.runtime_kind`` (a TrainingRuntime
    lives in ``launcher.namespace``). ``image`` is only the runtime's default: every TrainJob
    Aegis renders sets its own ``trainer.image``."""
    launcher = cfg.launcher
    metadata: dict[str, Any] = {
        "name": NAME,
        "labels": {"trainer.kubeflow.org/framework": "torch", "app.kubernetes.io/name": "aegis",
                   "app.kubernetes.io/component": "training-runtime", "app.kubernetes.io/part-of": "aegis",
                   "app.kubernetes.io/managed-by": "aegis"},
    }
    if launcher.runtime_kind != "ClusterTrainingRuntime":
        metadata["namespace"] = launcher.namespace
    node_job = {
        "name": REPLICATED_JOB,
        "replicas": 1,  # Trainer's runtime webhook: the trainer's replicated job has exactly one
        "template": {
            "metadata": {"labels": {ANCESTOR_LABEL: ANCESTOR_TRAINER}},
            "spec": {
                "backoffLimit": 0,
                "podFailurePolicy": node_job_failure_policy(),
                "template": {"spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "containers": [{"name": CONTAINER, "image": image}],
                }},
            },
        },
    }
    return {
        "apiVersion": TRAINJOB.api_version,
        "kind": str(launcher.runtime_kind),
        "metadata": metadata,
        "spec": {
            "mlPolicy": {"numNodes": 1, "torch": {}},  # each TrainJob says its numNodes and numProcPerNode
            "template": {"spec": {
                "failurePolicy": jobset_failure_policy(int(launcher.max_restarts)),
                "replicatedJobs": [node_job],
            }},
        },
    }
