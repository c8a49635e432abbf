"""What the Kubernetes launchers share: submit, dry run, follow, and the job's life after.

Each launcher only renders its own object; this base validates it, writes it into the
run dir, prints it (dry run) or submits it, records a ``JobRef`` (``job.json``) and
follows it to an exit code. ``status``, ``logs`` and ``cancel`` work from that ref alone,
in any later process, for every kind in ``aegis.k8s.kinds``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

from omegaconf import DictConfig

from aegis.k8s import pod
from aegis.k8s.kinds import Kind, kind_of
from aegis.k8s.manifests import Plan
from aegis.launch.base import MOST_GPUS_PER_POD, MOST_RETRIES, Launcher, RunContext
from aegis.core.lifecycle import CANCEL_FILE, JobRef, JobStatus, State

if TYPE_CHECKING:
    from aegis.errors import Problems
    from aegis.k8s.client import Cluster

log = logging.getLogger("aegis.k8s")


@dataclass
class Submitted:
    plan: Plan
    created: bool  # False: dry run (nothing sent) or server-side dry run (nothing kept)
    cluster: Optional["Cluster"] = None
    ref: Optional[JobRef] = None  # written to the run dir when ``created``

    def target(self):
        from aegis.k8s.follow import Target

        plan = self.plan
        return Target(kind_of(plan.kind), plan.name, plan.namespace, plan.run_id, plan.run_dir,
                      tracking=plan.settings.get("tracking_store"))


def _print_tracking_notice(notice: Optional[str]) -> None:
    """One line on where the pods track (``pod.tracking_notice``), saying so when this machine's
    $MLFLOW_TRACKING_URI is set, since it does not reach the pods."""
    if not notice:
        return
    if os.environ.get(pod.TRACKING_URI_ENV):
        notice += f"; this machine's ${pod.TRACKING_URI_ENV} is not passed to pods"
    print(f"[k8s] tracking: {notice}", file=sys.stderr, flush=True)


def _connect(ref: JobRef) -> tuple["Cluster", Kind]:
    """The cluster and kind a ref names; the client loads only here."""
    from aegis.k8s.client import Cluster

    if not ref.name or not ref.namespace:
        from aegis.k8s.client import ClusterError

        raise ClusterError(f"{Path(ref.run_dir) / 'job.json'} names no Kubernetes object (name and namespace).")
    return Cluster(ref.context), kind_of(ref.kind)


class KubernetesLauncher(Launcher[Plan, Submitted]):
    """Subclasses name their object's renderer and validator; rendering always validates."""

    render_manifest: Callable[[DictConfig, RunContext], Plan]
    validate_manifest: Callable[[dict], None]
    poll_s = 1.0  # how often ``logs(follow=True)`` looks for a new container start or the end
    bounds = {"resources.gpu": MOST_GPUS_PER_POD, "termination_grace_period_s": (86_400, "seconds (a day)"),
              "active_deadline_seconds": (31_536_000, "seconds (a year)"), "backoff_limit": MOST_RETRIES}

    def check_unresolved(self, cfg: DictConfig, found: "Problems") -> None:
        from aegis.k8s.checks import check_unresolved  # ${oc.env:...} would copy this machine's env into a manifest

        check_unresolved(cfg, found)

    def check(self, cfg: DictConfig, found: "Problems") -> None:
        """The rules every Kubernetes launcher shares; a subclass adds its own after them."""
        from aegis.k8s.checks import check_config

        check_config(cfg, found)

    def spans_nodes(self, cfg: DictConfig) -> bool:
        """Whether pods of one job may run on several nodes at once, so every claim they mount
        must allow that (ReadWriteMany); a launcher of a gang across nodes says so."""
        return False

    def render(self, cfg: DictConfig, ctx: RunContext) -> Plan:
        from aegis.failures import tags as failure_tags
        from aegis.k8s import claims

        plan = type(self).render_manifest(cfg, ctx)
        type(self).validate_manifest(plan.manifest)
        plan.settings["tracking_notice"] = pod.tracking_notice(cfg)
        plan.settings["image_notice"] = pod.image_notice(cfg)
        plan.settings["claims"] = claims.needed(cfg, self.spans_nodes(cfg))
        plan.settings["tracking_store"] = failure_tags.store(cfg)  # where a failure is tagged from here
        return plan

    def write(self, plan: Plan) -> None:
        """Keep the exact manifest beside the run's outputs, dry run or not."""
        plan.run_dir.mkdir(parents=True, exist_ok=True)
        (plan.run_dir / plan.file_name).write_text(plan.to_yaml())

    def submit(self, rendered: Plan) -> Submitted:
        self.write(rendered)
        settings = rendered.settings
        _print_tracking_notice(settings.get("tracking_notice"))
        if settings.get("image_notice"):
            print(f"[k8s] {settings['image_notice']}", file=sys.stderr, flush=True)
        if settings.get("dry_run"):
            sys.stdout.write(rendered.to_yaml())
            sys.stdout.flush()
            print(f"[k8s] dry run: nothing submitted; manifest written to {rendered.run_dir / rendered.file_name}",
                  file=sys.stderr)
            return Submitted(rendered, created=False)
        from aegis.k8s.client import Cluster  # the client loads only when a cluster is used

        from aegis.k8s import claims

        cluster = Cluster(settings.get("context"))
        claims.check(cluster, rendered.namespace, settings.get("claims") or [])
        server_dry_run = bool(settings.get("server_dry_run"))
        created = cluster.create(rendered.manifest, server_dry_run=server_dry_run)
        where = f"{rendered.kind} {rendered.namespace}/{rendered.name}"
        if server_dry_run:
            print(f"[k8s] server-side dry run: {where} was accepted by kube context {cluster.context}; "
                  "nothing was created", file=sys.stderr)
            return Submitted(rendered, created=False, cluster=cluster)
        ref = JobRef(launcher=self.name, run_id=rendered.run_id, run_dir=str(rendered.run_dir), kind=rendered.kind,
                     name=rendered.name, namespace=rendered.namespace,
                     uid=(created.get("metadata") or {}).get("uid"), context=cluster.context)
        ref.write()
        print(f"[k8s] submitted {where} to kube context {cluster.context} "
              f"(run dir in the pods: {rendered.pod_run_dir})", file=sys.stderr, flush=True)
        return Submitted(rendered, created=True, cluster=cluster, ref=ref)

    def follow(self, handle: Submitted) -> int:
        if not handle.created:
            return 0
        from aegis.k8s.follow import Follower

        plan, target = handle.plan, handle.target()
        if not plan.settings.get("wait", True):
            print(plan.run_id)
            print(f"[k8s] not waiting (launcher.wait=false); status: python -m aegis status {plan.run_id}; "
                  f"logs: python -m aegis logs {plan.run_id} --follow", file=sys.stderr)
            return 0
        from aegis.launch import deferred

        if deferred.deferring():  # a sweep: submit every job first, follow them together
            follower = Follower(handle.cluster, target, poll_s=float(plan.settings.get("poll_interval_s", 2.0)),
                                pending_timeout_s=plan.settings.get("pending_timeout_s"), prefix=f"[{plan.name}] ")
            deferred.defer(f"{plan.kind} {plan.namespace}/{plan.name} (run {plan.run_id})", follower.run,
                           interrupt=follower.interrupt, reattach=lambda: detach(handle))
            print(f"[k8s] {target.what} will be followed with the rest of the sweep", file=sys.stderr)
            return 0
        follower = Follower(handle.cluster, target, poll_s=float(plan.settings.get("poll_interval_s", 2.0)),
                            pending_timeout_s=plan.settings.get("pending_timeout_s"))
        try:
            return follower.run()
        except KeyboardInterrupt:
            follower.interrupt()
            print(f"\n{detach(handle)}", file=sys.stderr, flush=True)
            return 130

    # ------------------------------------------------ after submission, from a JobRef

    def status(self, ref: JobRef) -> JobStatus:
        return _status(*_connect(ref), ref)

    def logs(self, ref: JobRef, replica: Optional[str] = None, follow: bool = False) -> Iterator[str]:
        """The primary replica's training container by default, or ``replica`` (``worker-1``, a pod
        name); ``follow`` streams through restarts until the object has finished."""
        from aegis.k8s.logs import ContainerLogs

        cluster, kind = _connect(ref)
        stream = ContainerLogs(cluster, kind, ref.name, ref.namespace, replica=replica, poll_s=self.poll_s)
        if not follow:
            return stream.snapshot()

        def finished() -> bool:  # the object alone decides; its pods need not be listed
            obj = _current(cluster, kind, ref)
            state = kind.condition_state(obj)[0] if obj is not None else None
            return obj is None or (state is not None and state.terminal)

        return stream.follow(finished)

    def cancel(self, ref: JobRef) -> None:
        cancel_job(*_connect(ref), ref)


def detach(handle: Submitted) -> str:
    """What Ctrl-C does to a followed job: delete it (launcher.cancel_on_interrupt) or leave it
    running; the line that says which."""
    from aegis.k8s.client import ClusterError

    target = handle.target()
    if handle.plan.settings.get("cancel_on_interrupt"):
        try:
            cancel_job(handle.cluster, target.kind, handle.ref)
        except ClusterError as exc:  # it ended meanwhile, or the API refused
            return f"[k8s] interrupted; {target.what} was not deleted: {exc}"
        return f"[k8s] interrupted: deleted {target.what} (its pods go with it)"
    return (f"[k8s] stopped following; {target.what} keeps running. Follow again: {target.follow_again()}; "
            f"cancel: {target.cancel_hint()}")


def _current(cluster: "Cluster", kind: Kind, ref: JobRef) -> Optional[dict[str, Any]]:
    """The ref's object; None once it is gone (or a newer object has taken its name)."""
    obj = cluster.get(kind, ref.name, ref.namespace, missing_ok=True)
    if obj is not None and ref.uid and (obj.get("metadata") or {}).get("uid") != ref.uid:
        return None
    return obj


def _status(cluster: "Cluster", kind: Kind, ref: JobRef) -> JobStatus:
    from aegis.k8s.status import job_status

    obj = _current(cluster, kind, ref)
    if obj is None:
        return _gone(ref, kind)
    pods = cluster.pods(ref.namespace, kind.pods_selector(ref.name))
    status = job_status(kind, obj, pods)
    if (obj.get("metadata") or {}).get("deletionTimestamp") and not status.state.terminal:
        gone = _gone(ref, kind, being_deleted=True)
        status.state, status.reason = gone.state, gone.reason
    elif status.state in (State.failed, State.pending):
        _triage(cluster, kind, obj, pods, status)
    return status


def _triage(cluster: "Cluster", kind: Kind, obj: dict[str, Any], pods: list, status: JobStatus) -> None:
    """A failed job's ``failure`` (``aegis.failures.record.Failure.as_dict``: pod, rank, cause, log tail)
    in ``status.details``; a pending job's reason in the operator's words (``aegis.k8s.triage``)."""
    from aegis.k8s.triage import explain

    failed = status.state is State.failed
    found = explain(cluster, kind, obj, pods, failed=failed)
    if found is None:
        return
    if failed:
        status.details["failure"] = found.as_dict()
        status.exit_code = found.exit_code or status.exit_code  # the failing container's, as the follower's
    else:
        status.reason = f"{found.where()}: {found.cause}"


def _gone(ref: JobRef, kind: Kind, being_deleted: bool = False) -> JobStatus:
    """A deleted object: cancelled when ``aegis cancel`` asked for it, otherwise unknown."""
    where = f"{kind.name} {ref.namespace}/{ref.name}"
    if (Path(ref.run_dir) / CANCEL_FILE).exists():
        return JobStatus(State.cancelled, reason=f"{where} was deleted on request (aegis cancel)")
    if being_deleted:
        return JobStatus(State.unknown, reason=f"{where} is being deleted")
    return JobStatus(State.unknown, reason=f"{where} no longer exists in kube context {ref.context} "
                                           "(deleted, or removed after it finished by ttlSecondsAfterFinished)")


def cancel_job(cluster: "Cluster", kind: Kind, ref: JobRef) -> None:
    """Mark the run cancelled (``cancel.requested``, so ``status`` says so once the object is
    gone), then delete the object with background propagation: its pods go with it."""
    from aegis.k8s.client import ClusterError

    where = f"{kind.name} {ref.namespace}/{ref.name}"
    if not ref.uid:
        raise ClusterError(f"{Path(ref.run_dir) / 'job.json'} names {where} without its uid, so Aegis cannot tell "
                           "that object from another of the same name and deletes nothing (kubectl delete "
                           f"{kind.name.lower()} {ref.name} -n {ref.namespace} if it is this run's).")
    marker = Path(ref.run_dir) / CANCEL_FILE
    obj = _current(cluster, kind, ref)
    if obj is None:
        if marker.exists():
            return  # cancelled already
        raise ClusterError(f"run {ref.run_id} has nothing to cancel: {where} no longer exists.")
    state, _ = kind.condition_state(obj)
    if state is not None and state.terminal:
        raise ClusterError(f"run {ref.run_id} is not running (it is {state.value}): there is nothing to cancel.")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{time.time()}\n")
    try:
        cluster.delete(kind, ref.name, ref.namespace, uid=ref.uid, missing_ok=True)
    except BaseException:
        marker.unlink(missing_ok=True)
        raise
