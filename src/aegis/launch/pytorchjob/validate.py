"""The rendered PyTorchJob against the fields Aegis emits and the Training Operator's (v1)
admission rules, which its CRD schema does not encode; each pod template against the
official core/v1 schema."""

from __future__ import annotations

from typing import Any

from aegis.errors import ConfigError
from aegis.k8s import naming
from aegis.k8s.validate import schema_check


REPLICA_TYPES = ("Master", "Worker")
RESTART_POLICIES = ("Always", "OnFailure", "Never", "ExitCode")
CLEAN_POD_POLICIES = ("None", "Running", "All")


def pytorchjob_problems(manifest: dict[str, Any]) -> list[str]:
    """The admission rules of the Training Operator (v1) and the fields Aegis emits."""
    problems: list[str] = []
    if manifest.get("apiVersion") != "kubeflow.org/v1" or manifest.get("kind") != "PyTorchJob":
        problems.append("apiVersion/kind must be kubeflow.org/v1 PyTorchJob")
    name = manifest.get("metadata", {}).get("name", "")
    if not naming.is_dns_1035_label(name):
        problems.append(f"launcher.job_name={name!r} must be a DNS-1035 label (a lowercase letter first)")
    spec = manifest.get("spec", {})
    nproc = spec.get("nprocPerNode")
    if nproc is not None and not isinstance(nproc, str):
        problems.append(f"launcher.nproc_per_node renders nprocPerNode={nproc!r}, which must be a string")
    replicas = spec.get("pytorchReplicaSpecs") or {}
    if "Master" not in replicas:
        problems.append("pytorchReplicaSpecs must have a Master")
    for rtype, rspec in replicas.items():
        if rtype not in REPLICA_TYPES:
            problems.append(f"replica type {rtype!r} is not one of Master, Worker")
            continue
        count = rspec.get("replicas")
        if not isinstance(count, int) or count < 0:
            problems.append(f"{rtype}.replicas must be a whole number >= 0")
        if rtype == "Master" and count != 1:
            problems.append(f"Master.replicas must be exactly 1, not {count}")
        if rspec.get("restartPolicy") not in (None, *RESTART_POLICIES):
            problems.append(f"{rtype}.restartPolicy {rspec.get('restartPolicy')!r} is not one of {', '.join(RESTART_POLICIES)}")
        containers = rspec.get("template", {}).get("spec", {}).get("containers") or []
        if not any(c.get("name") == "pytorch" for c in containers):
            problems.append(f"{rtype} has no container named 'pytorch'")
        for c in containers:
            if not c.get("image"):
                problems.append(f"{rtype} container {c.get('name')!r} has no image")
    if "elasticPolicy" in spec:
        workers = replicas.get("Worker", {}).get("replicas", 0)
        if not workers or workers < 1:
            problems.append("an elasticPolicy needs Worker.replicas >= 1 (launcher.nodes >= 2)")
        ep = spec["elasticPolicy"]
        low, high = ep.get("minReplicas"), ep.get("maxReplicas")
        if low is not None and high is not None and low > high:
            problems.append("elasticPolicy.minReplicas must not exceed maxReplicas (launcher.elastic)")
        if ep.get("rdzvBackend") not in (None, "c10d", "etcd", "etcd-v2"):
            problems.append("elasticPolicy.rdzvBackend must be c10d, etcd or etcd-v2")
    run_policy = spec.get("runPolicy", {})
    if run_policy.get("cleanPodPolicy") not in (None, *CLEAN_POD_POLICIES):
        problems.append(f"launcher.clean_pod_policy={run_policy.get('cleanPodPolicy')!r} is not one of None, Running, All")
    for key in ("backoffLimit", "ttlSecondsAfterFinished", "activeDeadlineSeconds"):
        if key in run_policy and (not isinstance(run_policy[key], int) or run_policy[key] < 0):
            problems.append(f"runPolicy.{key} must be a whole number >= 0")
    return problems


def validate_pytorchjob(manifest: dict[str, Any]) -> None:
    problems = pytorchjob_problems(manifest)
    if problems:
        raise ConfigError(f"the rendered PyTorchJob would be refused: {problems[0]}.")
    checked: list[dict[str, Any]] = []
    for rtype, rspec in manifest["spec"]["pytorchReplicaSpecs"].items():
        if rspec["template"] in checked:  # Master and Worker usually share one pod template
            continue
        checked.append(rspec["template"])
        template = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": f"{manifest['metadata']['name']}-{rtype.lower()}"},
            "template": rspec["template"],
        }
        schema_check(template, f"PyTorchJob {rtype} pod template")
