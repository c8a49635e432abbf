"""The batch/v1 Job: one pod that runs ``train.py`` with ``launcher=local``."""

from __future__ import annotations

from typing import Any, Optional

from omegaconf import DictConfig

from aegis.k8s import pod
from aegis.k8s.manifests import Plan, job_name, plan
from aegis.launch.base import RunContext
from aegis.launch.k8s_job.kind import JOB


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
    # A preempted or evicted pod is not the training's fault: it resumes from
    # last.ckpt in the next pod without spending the backoff budget.
    spec["podFailurePolicy"] = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]}
    spec["template"] = {
        "metadata": {"labels": template_labels, "annotations": pod.annotations(cfg, ctx.run_id)},
        "spec": pod.pod_spec(cfg, main, restart_policy="Never"),
    }
    return plan(cfg, ctx, JOB, name, spec)
