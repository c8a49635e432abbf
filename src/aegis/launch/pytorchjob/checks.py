"""Rules of ``launcher=pytorchjob`` beyond the shared Kubernetes ones: a DNS-1035 name the
operator accepts, an elastic range that holds ``nodes``, one process per GPU, a DDP shape that
agrees with the job's, no Kueue label that the cluster's Kueue would ignore, and retries given
as ``launcher.max_restarts`` (the key the pods enforce), not ``launcher.backoff_limit``."""

from __future__ import annotations

from omegaconf import DictConfig

from aegis.errors import Problems
from aegis.k8s import naming
from aegis.k8s.checks import check_gang_shape


def check(cfg: DictConfig, found: Problems) -> None:
    launcher = cfg.launcher
    name = launcher.job_name
    if name is not None and not (naming.is_dns_1035_label(name) and len(name) <= naming.MAX_JOB_NAME):
        found.add(
            f"launcher.job_name={name!r} is not a valid PyTorchJob name: expected a DNS-1035 label of at most "
            f"{naming.MAX_JOB_NAME} characters (a lowercase letter first, then lowercase letters, digits and '-')."
        )
    _elastic(launcher, found)
    _kueue(launcher, found)
    if launcher.backoff_limit is not None:
        found.add(
            f"launcher.backoff_limit={launcher.backoff_limit} would not bound a PyTorchJob's retries: the Training "
            "Operator never enforces runPolicy.backoffLimit under restartPolicy ExitCode (kubeflow/trainer#2045): "
            f"expected launcher.max_restarts={launcher.backoff_limit}, which the pods enforce themselves, and "
            "launcher.backoff_limit left null.", "launcher.backoff_limit")
    check_gang_shape(cfg, found)


def _kueue(launcher: DictConfig, found: Problems) -> None:
    """Kueue v0.19.2 manages a PyTorchJob only with its ``kubeflow.org/pytorchjob`` integration,
    commented out of its default manager configuration (config/components/manager/
    controller_manager_config.yaml) and Helm values (charts/kueue/values.yaml), where
    ``trainer.kubeflow.org/trainjob`` is on. Without it the Kueue labels are inert: the job runs
    at once, outside the queue's quota, and is never preempted."""
    if launcher.kueue_pytorchjob == "enabled" or found.refused("launcher.kueue_pytorchjob"):
        return
    labels = {f"launcher.{key}": launcher.get(key) for key in ("queue", "priority_class")}
    keys = [key for key, value in labels.items() if value is not None and not found.refused(key)]
    if keys:
        found.add(
            f"{' and '.join(f'{key}={labels[key]}' for key in keys)} would be ignored: Kueue manages PyTorchJobs "
            "only with its kubeflow.org/pytorchjob integration, which its default configuration leaves off (v0.19), "
            "so the job would run at once, outside the queue's quota and never preempted: expected launcher=trainjob, "
            "which Kueue manages by default, or launcher.kueue_pytorchjob=enabled for a cluster whose Kueue enables "
            "that integration.",
            *keys,
        )


def _elastic(launcher: DictConfig, found: Problems) -> None:
    elastic = launcher.elastic
    if elastic.enabled and not found.refused("launcher.nodes", "launcher.elastic"):
        if launcher.nodes < 2:
            found.add(
                f"launcher.elastic.enabled=true needs at least one Worker: set launcher.nodes >= 2 (now {launcher.nodes}).",
                "launcher.nodes",
            )
        low = elastic.min_nodes if elastic.min_nodes is not None else launcher.nodes
        high = elastic.max_nodes if elastic.max_nodes is not None else launcher.nodes
        if elastic.min_nodes is not None and elastic.max_nodes is not None and low > high:
            # no launcher.nodes fits: the bounds themselves are at fault
            found.add(
                f"launcher.elastic.min_nodes={low} exceeds launcher.elastic.max_nodes={high}: expected "
                "min_nodes <= launcher.nodes <= max_nodes.", "launcher.elastic.min_nodes", "launcher.elastic.max_nodes"
            )
        elif not found.refused("launcher.nodes") and not low <= launcher.nodes <= high:
            found.add(
                f"launcher.nodes={launcher.nodes} must lie within launcher.elastic.min_nodes={low} and "
                f"launcher.elastic.max_nodes={high}: expected {low} <= launcher.nodes <= {high}.", "launcher.nodes"
            )

