"""The rendered TrainJob against the fields Aegis emits and Kubeflow Trainer's (v2.3) admission
rules that its CRD schema does not encode; the node pod it describes against the official
core/v1 schema.

Trainer's webhook runs the torch plugin's check (no PET_* variable in ``trainer.env``: the
plugin sets them) and JobSet's (every pod name ``<name>-node-0-<index>-<5 chars>`` a DNS-1035
label); the CRD itself only says the name is a DNS-1035 label of at most 63 characters.

Aegis's runtime (``runtime.render_runtime``) against Trainer's runtime webhook, JobSet's
failure-policy validation and the API server's podFailurePolicy rules, its node Job against
the official batch/v1 schema.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from aegis.errors import ConfigError
from aegis.k8s import naming
from aegis.k8s.validate import schema_check
from aegis.launch.trainjob.kind import CONTAINER, REPLICATED_JOB, longest_pod_name
from aegis.launch.trainjob.runtime import ANCESTOR_LABEL, ANCESTOR_TRAINER
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


# --------------------------------------------------------------------------- the runtime

# Trainer v2.3.0 pkg/webhooks/trainingruntime_webhook.go (validateReplicatedJobs): a replicated job
# whose ancestor label is one of these has replicas 1 and the container named here.
ANCESTOR_CONTAINERS = {"trainer": CONTAINER, "model-initializer": "model-initializer",
                       "dataset-initializer": "dataset-initializer"}
# Trainer v2.4.0 refuses a runtime whose ReplicatedJob names are longer than this (its release
# notes: "BREAKING CHANGE: limit ReplicatedJob name length to 20 characters in runtimes",
# kubeflow/trainer#4394; the v2.4.0 source was not at hand to read the exact rule).
MAX_REPLICATED_JOB_NAME = 20
# JobSet v0.12.0 pkg/webhooks/jobset_webhook.go: validOnJobFailureReasons, the rule name pattern
# and length, and the actions (api/jobset/v1alpha2/jobset_types.go, FailurePolicyAction).
JOB_FAILURE_REASONS = ("BackoffLimitExceeded", "DeadlineExceeded", "FailedIndexes", "MaxFailedIndexesExceeded",
                       "PodFailurePolicy")
RULE_NAME = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
JOBSET_ACTIONS = ("FailJobSet", "RestartJobSet", "RestartJobSetAndIgnoreMaxRestarts", "RestartJob",
                  "RestartJobAndIgnoreMaxRestarts")


def runtime_problems(runtime: dict[str, Any]) -> list[str]:
    """The admission rules a training runtime meets (Trainer's runtime webhook, JobSet's failure
    policy validation, the API server's podFailurePolicy rules) and the retry rules Aegis's
    runtime promises; one phrase per problem."""
    problems: list[str] = []
    if runtime.get("apiVersion") != "trainer.kubeflow.org/v1alpha1" or runtime.get("kind") not in RUNTIME_KINDS:
        problems.append("apiVersion/kind must be trainer.kubeflow.org/v1alpha1 ClusterTrainingRuntime or "
                        "TrainingRuntime")
    if not naming.is_dns_1123_subdomain(str((runtime.get("metadata") or {}).get("name", ""))):
        problems.append("the runtime's name must be a DNS-1123 subdomain")
    spec = (runtime.get("spec") or {})
    if "torch" not in ((spec.get("mlPolicy") or {})):
        problems.append("mlPolicy.torch must be set, or the torch plugin injects no PET_* variables")
    jobset = ((spec.get("template") or {}).get("spec") or {})
    jobs = jobset.get("replicatedJobs") or []
    names = [j.get("name", "") for j in jobs]
    for job in jobs:
        name = job.get("name", "")
        if len(name) > MAX_REPLICATED_JOB_NAME or not naming.is_dns_1035_label(name):
            problems.append(f"replicated job {name!r} must be a DNS-1035 label of at most "
                            f"{MAX_REPLICATED_JOB_NAME} characters (Trainer v2.4)")
        ancestor = (((job.get("template") or {}).get("metadata") or {}).get("labels") or {}).get(ANCESTOR_LABEL)
        pod = ((job.get("template") or {}).get("spec") or {}).get("template", {}).get("spec") or {}
        if ancestor in ANCESTOR_CONTAINERS:
            if job.get("replicas", 1) != 1:
                problems.append(f"replicated job {name!r} must have replicas 1")
            if ANCESTOR_CONTAINERS[ancestor] not in {c.get("name") for c in pod.get("containers") or []}:
                problems.append(f"replicated job {name!r} must have a container {ANCESTOR_CONTAINERS[ancestor]!r}")
        problems.extend(_job_problems(name, (job.get("template") or {}).get("spec") or {}, pod))
    trainers = [j for j in jobs if (((j.get("template") or {}).get("metadata") or {}).get("labels") or {}).get(
        ANCESTOR_LABEL) == ANCESTOR_TRAINER]
    if [j.get("name") for j in trainers] != [REPLICATED_JOB]:
        problems.append(f"the runtime needs one replicated job {REPLICATED_JOB!r} labelled "
                        f"{ANCESTOR_LABEL}={ANCESTOR_TRAINER} (the one the TrainJob's runtimePatches patch)")
    problems.extend(_failure_policy_problems(jobset.get("failurePolicy"), names))
    return problems


def _job_problems(name: str, job: dict[str, Any], pod: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    policy = job.get("podFailurePolicy")
    if policy is not None:  # kubernetes pkg/apis/batch/validation/validation.go, validatePodFailurePolicy
        if pod.get("restartPolicy") != "Never":
            problems.append(f"replicated job {name!r}: a podFailurePolicy needs restartPolicy Never")
        containers = {c.get("name") for c in (pod.get("containers") or []) + (pod.get("initContainers") or [])}
        for rule in policy.get("rules") or []:
            codes = rule.get("onExitCodes") or {}
            if codes.get("containerName") not in (None, *containers):
                problems.append(f"replicated job {name!r}: podFailurePolicy names container "
                                f"{codes.get('containerName')!r}, which its pods do not have")
    if name == REPLICATED_JOB:  # Aegis's promise, not an admission rule
        if pod.get("restartPolicy") != "Never" or job.get("backoffLimit") != 0 or policy is None:
            problems.append(f"replicated job {name!r} must run its pods with restartPolicy Never, backoffLimit 0 "
                            "and a podFailurePolicy, so that the JobSet's failurePolicy decides every retry")
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"replicated job {name!r} must not mount the service-account token")
    return problems


def _failure_policy_problems(policy: Any, job_names: list[str]) -> list[str]:
    if not policy:
        return ["the JobSet template needs a failurePolicy (without one JobSet fails on the first failed Job)"]
    problems: list[str] = []
    rules = policy.get("rules") or []
    if len({r.get("name") for r in rules}) != len(rules):
        problems.append("failurePolicy rule names must be unique")
    for rule in rules:
        rule_name = str(rule.get("name", ""))
        if not (1 <= len(rule_name) <= 128 and RULE_NAME.match(rule_name)):
            problems.append(f"failurePolicy rule name {rule_name!r} must match {RULE_NAME.pattern} (1-128 characters)")
        if rule.get("action") not in JOBSET_ACTIONS:
            problems.append(f"failurePolicy rule {rule_name!r} has action {rule.get('action')!r}")
        for reason in rule.get("onJobFailureReasons") or []:
            if reason not in JOB_FAILURE_REASONS:
                problems.append(f"failurePolicy rule {rule_name!r}: {reason!r} is not a Job failure reason")
        for target in rule.get("targetReplicatedJobs") or []:
            if target not in job_names:
                problems.append(f"failurePolicy rule {rule_name!r} targets {target!r}, which is not a replicated job")
    return problems


def validate_runtime(runtime: dict[str, Any]) -> None:
    """The runtime Aegis renders, refused in one sentence before it is printed or written; its
    node Job checked as a batch/v1 Job against the official schema."""
    problems = runtime_problems(runtime)
    if problems:
        raise ConfigError(f"the rendered {runtime.get('kind')} would be refused: {problems[0]}.")
    for job in runtime["spec"]["template"]["spec"]["replicatedJobs"]:
        schema_check({"apiVersion": "batch/v1", "kind": "Job",
                      "metadata": {"name": f"{runtime['metadata']['name']}-{job['name']}"},
                      "spec": job["template"]["spec"]}, f"{runtime.get('kind')} {job['name']} Job")
