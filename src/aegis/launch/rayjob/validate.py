"""The rendered RayJob against the fields Aegis emits and KubeRay's (v1.7) own validation, which
its CRD schema does not encode; each pod template against the official core/v1 schema.

KubeRay's controller refuses, with only an event on the RayJob, a name that is not a DNS-1035
label of at most 47 characters (``ValidateRayJobMetadata``), a worker group whose
``minReplicas <= replicas <= maxReplicas`` does not hold, and a RayJob whose cluster outlives it
under Kueue (``shutdownAfterJobFinishes`` false); a Job's pod template (the submitter) must not
restart in place. Here each is one sentence before anything is sent.
"""

from __future__ import annotations

from typing import Any

from aegis.errors import ConfigError
from aegis.k8s import naming
from aegis.k8s.validate import schema_check
from aegis.launch.rayjob.kind import CONTAINER, HEAD, MAX_NAME_LENGTH, SUBMITTER, WORKER


def templates(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The pod templates by role: ``head``, ``worker`` (when there are workers), ``submitter``."""
    spec = manifest.get("spec") or {}
    cluster = spec.get("rayClusterSpec") or {}
    found = {HEAD: (cluster.get("headGroupSpec") or {}).get("template") or {}}
    for group in cluster.get("workerGroupSpecs") or []:
        found[WORKER] = group.get("template") or {}
    if spec.get("submitterPodTemplate"):
        found[SUBMITTER] = spec["submitterPodTemplate"]
    return found


def rayjob_problems(manifest: dict[str, Any]) -> list[str]:
    """KubeRay's rules and the fields Aegis emits; one phrase per problem."""
    problems: list[str] = []
    if manifest.get("apiVersion") != "ray.io/v1" or manifest.get("kind") != "RayJob":
        problems.append("apiVersion/kind must be ray.io/v1 RayJob")
    name = (manifest.get("metadata") or {}).get("name", "")
    if not (naming.is_dns_1035_label(name) and len(name) <= MAX_NAME_LENGTH):
        problems.append(f"launcher.job_name={name!r} must be a DNS-1035 label of at most {MAX_NAME_LENGTH} characters "
                        "(KubeRay names its RayCluster <name>-<5 characters>)")
    spec = manifest.get("spec") or {}
    if spec.get("submissionMode") != "K8sJobMode":
        problems.append("submissionMode must be K8sJobMode (a submitter pod whose log is the search's progress)")
    if spec.get("shutdownAfterJobFinishes") is not True:
        problems.append("shutdownAfterJobFinishes must be true (the Ray cluster ends with the search; Kueue requires it)")
    if "suspend" in spec:
        problems.append("suspend must not be rendered (Kueue suspends and admits the RayJob)")
    if not str(spec.get("entrypoint") or "").strip():
        problems.append("the entrypoint (the search's command) must be set")
    for key in ("ttlSecondsAfterFinished", "activeDeadlineSeconds"):
        value = spec.get(key)
        if value is not None and (not isinstance(value, int) or value < (0 if key.startswith("ttl") else 1)):
            problems.append(f"{key}={value!r} must be a whole number >= {0 if key.startswith('ttl') else 1}")
    cluster = spec.get("rayClusterSpec") or {}
    for group in cluster.get("workerGroupSpecs") or []:
        low, replicas, high = group.get("minReplicas"), group.get("replicas"), group.get("maxReplicas")
        if not all(isinstance(v, int) for v in (low, replicas, high)) or not 0 <= low <= replicas <= high:
            problems.append(f"launcher.workers renders worker group {group.get('groupName')!r} with minReplicas={low!r}, "
                            f"replicas={replicas!r}, maxReplicas={high!r}, which must be whole numbers with "
                            "0 <= minReplicas <= replicas <= maxReplicas")
    for role, template in templates(manifest).items():
        containers = (template.get("spec") or {}).get("containers") or []
        if not containers or containers[0].get("name") != CONTAINER or not containers[0].get("image"):
            problems.append(f"the {role} pod's first container must be {CONTAINER!r} with an image (launcher.image)")
        elif role != SUBMITTER and ("command" in containers[0] or "args" in containers[0]):
            problems.append(f"the {role} pod's Ray container must leave its command to KubeRay (ray start)")
    submitter = (templates(manifest).get(SUBMITTER) or {}).get("spec") or {}
    if submitter and submitter.get("restartPolicy") not in ("Never", "OnFailure"):
        problems.append("the submitter pod's restartPolicy must be Never (it runs as a Job)")
    return problems


def validate_rayjob(manifest: dict[str, Any]) -> None:
    problems = rayjob_problems(manifest)
    if problems:
        raise ConfigError(f"the rendered RayJob would be refused: {problems[0]}.")
    name = manifest["metadata"]["name"]
    for role, template in templates(manifest).items():
        schema_check({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": f"{name}-{role}"},
                      "template": template}, f"RayJob {role} pod template")
