"""The rendered TrainJob against the fields Aegis emits and Kubeflow Trainer's (v2.3) admission
rules that its CRD schema does not encode; the node pod it describes against the official
core/v1 schema.

Trainer's webhook runs the torch plugin's check (no PET_* variable in ``trainer.env``: the
plugin sets them) and JobSet's (every pod name ``<name>-node-0-<index>-<5 chars>`` a DNS-1035
label); the CRD itself only says the name is a DNS-1035 label of at most 63 characters.
"""

from __future__ import annotations

import copy
from typing import Any

from aegis.errors import ConfigError
from aegis.k8s import naming
from aegis.k8s.validate import schema_check
from aegis.launch.trainjob.kind import CONTAINER, REPLICATED_JOB, longest_pod_name
from aegis.launch.trainjob.schema import RUNTIME_KINDS

# What the torch plugin injects into the node container; its webhook refuses a TrainJob that sets any.
RESERVED_ENV = ("PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT")
# What a runtimePatches container entry may carry (CRD v2.3.0); env goes through trainer.env.
CONTAINER_PATCH_FIELDS = {"name", "securityContext", "volumeMounts"}


def trainjob_problems(manifest: dict[str, Any]) -> list[str]:
    """Trainer's admission rules and the fields Aegis emits; one phrase per problem."""
    problems: list[str] = []
    if manifest.get("apiVersion") != "trainer.kubeflow.org/v1alpha1" or manifest.get("kind") != "TrainJob":
        problems.append("apiVersion/kind must be trainer.kubeflow.org/v1alpha1 TrainJob")
    name = (manifest.get("metadata") or {}).get("name", "")
    spec = manifest.get("spec") or {}
    trainer = spec.get("trainer") or {}
    nodes = trainer.get("numNodes")
    if not naming.is_dns_1035_label(name):
        problems.append(f"launcher.job_name={name!r} must be a DNS-1035 label of at most 63 characters")
    elif isinstance(nodes, int) and not naming.is_dns_1035_label(longest_pod_name(name, nodes)):
        problems.append(f"launcher.job_name={name!r} makes pod names like {longest_pod_name(name, nodes)!r}, "
                        "longer than 63 characters")
    ref = spec.get("runtimeRef") or {}
    if not ref.get("name"):
        problems.append("runtimeRef.name (launcher.runtime) must be set")
    if ref.get("kind", "ClusterTrainingRuntime") not in RUNTIME_KINDS:
        problems.append(f"launcher.runtime_kind={ref.get('kind')!r} is not one of {', '.join(RUNTIME_KINDS)}")
    if ref.get("apiGroup", "trainer.kubeflow.org") != "trainer.kubeflow.org":
        problems.append("runtimeRef.apiGroup must be trainer.kubeflow.org")
    if not isinstance(nodes, int) or nodes < 1:
        problems.append(f"launcher.nodes renders numNodes={nodes!r}, which must be a whole number >= 1")
    nproc = trainer.get("numProcPerNode")
    if not isinstance(nproc, int) or nproc < 1:  # never "auto": on CPU nodes that is one process per CPU
        problems.append(f"launcher.nproc_per_node renders numProcPerNode={nproc!r}, which must be a whole number >= 1")
    if not trainer.get("image"):
        problems.append("trainer.image (launcher.image) must be set")
    if not trainer.get("args") or "command" in trainer:
        problems.append("the training command must be trainer.args (under the image's init), never trainer.command")
    reserved = sorted({e.get("name") for e in trainer.get("env") or []} & set(RESERVED_ENV))
    if reserved:
        problems.append(f"trainer.env sets {', '.join(reserved)}, which Trainer's torch plugin injects itself "
                        "(launcher.env / launcher.secret_env)")
    patches = spec.get("runtimePatches") or []
    if len({p.get("manager") for p in patches}) != len(patches) or not all(p.get("manager") for p in patches):
        problems.append("every runtimePatches entry needs its own manager")
    for job in _patched_jobs(spec):
        if job.get("name") != REPLICATED_JOB:
            problems.append(f"runtimePatches patch replicated job {job.get('name')!r}, which the torch runtime "
                            f"does not have (it has {REPLICATED_JOB!r})")
        pod_spec = (((job.get("template") or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
        for c in pod_spec.get("containers") or []:
            if c.get("name") != CONTAINER or set(c) - CONTAINER_PATCH_FIELDS:
                problems.append(f"a runtimePatches container entry may only patch {CONTAINER!r}'s "
                                f"{', '.join(sorted(CONTAINER_PATCH_FIELDS - {'name'}))}")
        if pod_spec.get("initContainers"):
            problems.append("a runtimePatches entry cannot add init containers (launcher.prefetch_data)")
    return problems


def _patched_jobs(spec: dict[str, Any]) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    for patch in spec.get("runtimePatches") or []:
        template = ((patch.get("trainingRuntimeSpec") or {}).get("template") or {}).get("spec") or {}
        jobs.extend(template.get("replicatedJobs") or [])
    return jobs


def node_pod_template(manifest: dict[str, Any]) -> dict[str, Any]:
    """The node pod's template as Trainer builds it from this TrainJob: the ``node`` container from
    ``trainer`` plus the patched mounts and security context, the pod-level patch around it.

    (The runtime's own template adds what the TrainJob does not say: nothing of Aegis's.)"""
    spec = manifest["spec"]
    trainer = spec["trainer"]
    container: dict[str, Any] = {"name": CONTAINER, "image": trainer["image"]}
    for field, key in (("command", "command"), ("args", "args"), ("env", "env"), ("resourcesPerNode", "resources")):
        if field in trainer:
            container[key] = copy.deepcopy(trainer[field])
    template: dict[str, Any] = {"metadata": {}, "spec": {}}
    for job in _patched_jobs(spec):
        if job.get("name") != REPLICATED_JOB:
            continue
        pod_template = ((job.get("template") or {}).get("spec") or {}).get("template") or {}
        template["metadata"].update(copy.deepcopy(pod_template.get("metadata") or {}))
        pod_spec = copy.deepcopy(pod_template.get("spec") or {})
        for patch in pod_spec.pop("containers", []):
            if patch.get("name") == CONTAINER:
                container.update({k: v for k, v in patch.items() if k != "name"})
        template["spec"].update(pod_spec)
    template["spec"]["containers"] = [container]
    return template


def validate_trainjob(manifest: dict[str, Any]) -> None:
    problems = trainjob_problems(manifest)
    if problems:
        raise ConfigError(f"the rendered TrainJob would be refused: {problems[0]}.")
    template = {"apiVersion": "v1", "kind": "PodTemplate",
                "metadata": {"name": f"{manifest['metadata']['name']}-{REPLICATED_JOB}"},
                "template": node_pod_template(manifest)}
    schema_check(template, "TrainJob node pod template")
