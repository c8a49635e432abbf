"""Rules of ``launcher=trainjob`` beyond the shared Kubernetes ones, one sentence each, before
anything is rendered: Trainer's admission rules (no reserved PET_* variable, a name whose
JobSet pods stay DNS labels), the runtime's name, one process per GPU, a DDP shape that agrees
with the job's, and the shared keys a TrainJob has no field for."""

from __future__ import annotations

from omegaconf import DictConfig

from aegis.errors import Problems
from aegis.k8s import naming
from aegis.k8s.checks import check_gang_shape
from aegis.launch.trainjob.kind import max_name_length
from aegis.launch.trainjob.validate import RESERVED_ENV

# Shared keys with no TrainJob field (Trainer v2.3): refused when set, never dropped silently.
NO_FIELD = {
    "launcher.image_pull_policy": "the runtime's container decides it (Kubernetes' default: IfNotPresent for a tag)",
    "launcher.backoff_limit": "retries are the runtime's JobSet failure policy: launcher.max_restarts in "
                              "Aegis's runtime aegis-torch",
    "launcher.ttl_seconds_after_finished": "cleanup after the end is the runtime's (or Kueue's)",
    "launcher.working_dir": "the image's WORKDIR is used",
    "launcher.pod_priority_class": "a TrainJob's pods take their priority from Kueue's "
                                   "launcher.priority_class or the runtime",
}


def check(cfg: DictConfig, found: Problems) -> None:
    launcher = cfg.launcher
    _reserved_env(launcher, found)
    _name(launcher, found)
    runtime = launcher.runtime
    if not found.refused("launcher.runtime") and not naming.is_dns_1123_subdomain(str(runtime)):
        found.add(f"launcher.runtime={runtime!r} is not a valid runtime name: expected the name of a "
                  f"{launcher.runtime_kind} (a DNS-1123 subdomain, e.g. torch-distributed).", "launcher.runtime")
    _unsupported(launcher, found)
    _queued_tolerations(launcher, found)
    check_gang_shape(cfg, found)


def _queued_tolerations(launcher: DictConfig, found: Problems) -> None:
    """A queued TrainJob's tolerations do not survive admission. Kueue v0.19.2's TrainJob
    integration appends its own ``runtimePatches`` entry (manager ``kueue.x-k8s.io/manager``,
    ``pkg/controller/jobs/trainjob/trainjob_webhook.go``) after Aegis's, and fills it at
    admission with the admitting ResourceFlavors' tolerations alone (``trainjob_controller.go``
    ``RunWithPodSetsInfo``, ``pkg/podset/podset.go`` ``FromAssignment``); Trainer v2.3.0 applies
    the patches in list order as strategic merges (``pkg/runtime/core/trainingruntime.go``
    ``mergeRuntimePatches``), and a PodSpec's ``tolerations`` is an atomic list: the later patch
    replaces it. ``runtimePatches`` is a map keyed by manager, so Aegis cannot place its entry
    after Kueue's, and the runtime's own template is patched the same way."""
    if not launcher.tolerations or launcher.get("queue") is None or found.refused("launcher.queue"):
        return
    found.add(
        f"launcher.tolerations would be lost with launcher.queue={launcher.queue} on a TrainJob: Kueue adds its "
        "runtime patch after Aegis's when it admits the job, and Kubeflow Trainer applies it as a strategic merge "
        "that replaces the pods' tolerations with those of the admitting ResourceFlavor whenever the flavor has "
        "any: expected the tolerations on that ResourceFlavor (spec.tolerations, which Kueue gives every pod it "
        "admits) and launcher.tolerations=[], or no launcher.queue.", "launcher.tolerations")


def _reserved_env(launcher: DictConfig, found: Problems) -> None:
    for where in ("env", "secret_env"):
        for key in launcher[where]:
            if str(key) in RESERVED_ENV:
                found.add(f"launcher.{where}.{key} is set by Kubeflow Trainer's torch plugin in every node pod, "
                          f"and Trainer refuses a TrainJob that sets it: remove it (torchrun reads the injected "
                          f"{', '.join(RESERVED_ENV)}).", f"launcher.{where}.{key}")


def _name(launcher: DictConfig, found: Problems) -> None:
    name = launcher.job_name
    if name is None or found.refused("launcher.nodes"):
        return
    limit = min(63, max_name_length(launcher.nodes))
    if not (naming.is_dns_1035_label(str(name)) and len(str(name)) <= limit):
        found.add(
            f"launcher.job_name={name!r} is not a valid TrainJob name for {launcher.nodes} nodes: expected a "
            f"DNS-1035 label of at most {limit} characters (a lowercase letter first, then lowercase letters, "
            f"digits and '-'), so that its pods' names (<name>-node-0-<index>-<5 characters>) stay within 63.",
            "launcher.job_name")


def _unsupported(launcher: DictConfig, found: Problems) -> None:
    for key, why in NO_FIELD.items():
        value = launcher.get(key.partition(".")[2])
        if value is not None:
            found.add(f"{key}={value!r} has no TrainJob field ({why}): leave it null with launcher=trainjob.", key)
    if launcher.env_from:
        found.add("launcher.env_from has no TrainJob field (Trainer v2.3 takes env per variable): expected an empty "
                  "list, with each Secret key as +launcher.secret_env.NAME=<secret name>/<key>.", "launcher.env_from")
    if launcher.prefetch_data and not found.refused("launcher.prefetch_data"):
        found.add("launcher.prefetch_data=true needs an init container, which a TrainJob cannot add to its "
                  "runtime: expected false with launcher=trainjob (fill the cache with launcher=pytorchjob or "
                  "python -m aegis.data fetch).", "launcher.prefetch_data")

