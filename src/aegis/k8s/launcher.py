"""What the two Kubernetes launchers share: submit, dry run, follow, interrupt.

Each launcher only renders its own object; this base validates it, writes it into the
run dir, prints it (dry run) or submits it, and follows it to an exit code.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import Callable, Optional

from omegaconf import DictConfig

from aegis.k8s import pod
from aegis.k8s.manifests import Plan
from aegis.launch.base import Launcher, RunContext

log = logging.getLogger("aegis.k8s")


@dataclass
class Submitted:
    plan: Plan
    created: bool  # False: dry run (nothing sent) or server-side dry run (nothing kept)
    cluster: Optional[object] = None


def _print_tracking_notice(notice: Optional[str]) -> None:
    """One line on where the pods track (``pod.tracking_notice``), saying so when this machine's
    $MLFLOW_TRACKING_URI is set, since it does not reach the pods."""
    if not notice:
        return
    if os.environ.get(pod.TRACKING_URI_ENV):
        notice += f"; this machine's ${pod.TRACKING_URI_ENV} is not passed to pods"
    print(f"[k8s] tracking: {notice}", file=sys.stderr, flush=True)


class KubernetesLauncher(Launcher[Plan, Submitted]):
    """Subclasses name their object's renderer and validator; rendering always validates."""

    render_manifest: Callable[[DictConfig, RunContext], Plan]
    validate_manifest: Callable[[dict], None]

    def render(self, cfg: DictConfig, ctx: RunContext) -> Plan:
        plan = type(self).render_manifest(cfg, ctx)
        type(self).validate_manifest(plan.manifest)
        plan.settings["tracking_notice"] = pod.tracking_notice(cfg)
        return plan

    def write(self, plan: Plan) -> None:
        """Keep the exact manifest beside the run's outputs, dry run or not."""
        plan.run_dir.mkdir(parents=True, exist_ok=True)
        (plan.run_dir / plan.file_name).write_text(plan.to_yaml())

    def submit(self, rendered: Plan) -> Submitted:
        self.write(rendered)
        settings = rendered.settings
        _print_tracking_notice(settings.get("tracking_notice"))
        if settings.get("dry_run"):
            sys.stdout.write(rendered.to_yaml())
            sys.stdout.flush()
            print(f"[k8s] dry run: nothing submitted; manifest written to {rendered.run_dir / rendered.file_name}",
                  file=sys.stderr)
            return Submitted(rendered, created=False)
        from aegis.k8s.client import Cluster  # the client loads only when a cluster is used

        cluster = Cluster(settings.get("context"))
        server_dry_run = bool(settings.get("server_dry_run"))
        cluster.create(rendered.manifest, server_dry_run=server_dry_run)
        where = f"{rendered.kind} {rendered.namespace}/{rendered.name}"
        if server_dry_run:
            print(f"[k8s] server-side dry run: {where} was accepted by kube context {cluster.context}; "
                  "nothing was created", file=sys.stderr)
            return Submitted(rendered, created=False, cluster=cluster)
        print(f"[k8s] submitted {where} to kube context {cluster.context} "
              f"(run dir in the pods: {rendered.pod_run_dir})", file=sys.stderr, flush=True)
        return Submitted(rendered, created=True, cluster=cluster)

    def follow(self, handle: Submitted) -> int:
        if not handle.created:
            return 0
        from aegis.k8s.follow import Follower, Target

        plan = handle.plan
        target = Target(plan.kind, plan.name, plan.namespace, plan.container)
        if not plan.settings.get("wait", True):
            print(plan.name)
            print(f"[k8s] not waiting (launcher.wait=false); follow with: {target.follow_again()}", file=sys.stderr)
            return 0
        from aegis.k8s import multirun

        if multirun.deferring():  # a sweep: submit every job first, follow them together
            multirun.defer(handle)
            print(f"[k8s] {target.kind} {target.namespace}/{target.name} will be followed with the rest of the sweep",
                  file=sys.stderr)
            return 0
        follower = Follower(handle.cluster, target, poll_s=float(plan.settings.get("poll_interval_s", 2.0)))
        try:
            return follower.run()
        except KeyboardInterrupt:
            follower.interrupt()
            if plan.settings.get("cancel_on_interrupt"):
                handle.cluster.delete(plan.kind, plan.name, plan.namespace)
                print(f"\n[k8s] interrupted: deleted {plan.kind} {plan.namespace}/{plan.name} "
                      "(its pods go with it)", file=sys.stderr, flush=True)
            else:
                print(f"\n[k8s] stopped following; {plan.kind} {plan.namespace}/{plan.name} keeps running. "
                      f"Follow again: {target.follow_again()}; cancel: kubectl delete {plan.kind.lower()} "
                      f"{plan.name} -n {plan.namespace}", file=sys.stderr, flush=True)
            return 130
