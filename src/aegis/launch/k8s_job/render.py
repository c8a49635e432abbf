"""The batch/v1 Job: one pod that runs ``train.py`` with ``launcher=local``."""

from __future__ import annotations

from typing import Any, Optional

from omegaconf import DictConfig

from aegis.k8s import pod
from aegis.k8s.manifests import Plan, job_name, plan
from aegis.launch.base import RunContext
from aegis.launch.k8s_job.kind import JOB


# A run's own failure: an exception, a NaN loss, a refused config (the gang's supervisor turns a
# lost peer into 143). Retrying repeats it.
OWN_FAILURE_EXIT_CODES = tuple(range(1, 128))
# Killed by a signal: 143 (SIGTERM: preempted, drained, deleted; last.ckpt was written), 137
# (SIGKILL: the OOM killer, the grace period's end). The next pod resumes from last.ckpt.
SIGNAL_EXIT_CODES = tuple(range(128, 256))


def pod_failure_policy(container: str) -> dict[str, Any]:
    """What the Job controller does with a failed pod: the first rule that matches decides, and
    a pod no rule matches counts against backoffLimit (kubernetes pkg/controller/job/
    pod_failure_policy.go). Exit codes are the training container's only: a failed
    ``prefetch-data`` init container (a network error, say) is counted and retried."""
    def on_exit(action: str, codes: tuple[int, ...]) -> dict[str, Any]:
        return {"action": action, "onExitCodes": {"containerName": container, "operator": "In", "values": list(codes)}}

    return {"rules": [
        # Preempted, evicted, drained, node lost: not the training's fault, and not counted.
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        on_exit("FailJob", OWN_FAILURE_EXIT_CODES),
        on_exit("Count", SIGNAL_EXIT_CODES),  # what an unmatched failure gets too: said, not implied
    ]}


def render_job(cfg: DictConfig, ctx: RunContext, nonce: Optional[str] = None) -> Plan:
    launcher = cfg.launcher
    name = job_name(cfg, ctx, nonce)
    command = [launcher.python, *pod.entry_args(cfg, ctx), *pod.pod_overrides(cfg, ctx)]
    main = pod.container(cfg, JOB.container, command, ctx=ctx)
    template_labels = pod.labels(cfg, name, ctx.run_id)
    spec: dict[str, Any] = {"backoffLimit": launcher.backoff_limit}
    if launcher.active_deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = launcher.active_deadline_seconds
    if launcher.ttl_seconds_after_finished is not None:
        spec["ttlSecondsAfterFinished"] = launcher.ttl_seconds_after_finished
    spec["podFailurePolicy"] = pod_failure_policy(JOB.container)
    spec["template"] = {
        "metadata": {"labels": template_labels, "annotations": pod.annotations(cfg, ctx.run_id)},
        "spec": pod.pod_spec(cfg, main, restart_policy="Never"),
    }
    return plan(cfg, ctx, JOB, name, spec)
