"""What the real controllers do with the rendered objects, not only whether they validate.

Each rule here is transcribed from the controller's (or the API server's) own source, cited
where it is used, and applied to what Aegis renders: a manifest that passes the schema can
still make a controller do something the README does not promise.
"""

from __future__ import annotations

import kubernetes_validate
import pytest

from aegis.k8s.validate import KUBERNETES_VERSION
from k8s_helpers import IMAGE, compose_cfg, context_for
from test_k8s_rayjob import crd_errors, crd_schema, search_cfg  # noqa: F401 (crd_schema: a fixture)
from test_k8s_rayjob import render as render_search


def render(kind, tmp_path, *overrides):
    overrides = (f"launcher={kind}", f"launcher.image={IMAGE}", *overrides)
    cfg = compose_cfg(*overrides)
    from aegis.launch import get_launcher

    return get_launcher(kind).render(cfg, context_for(cfg, list(overrides), tmp_path / "run"))


# ----------------------------------------------------------------- batch/v1 Job: podFailurePolicy

def api_server_problems(spec):
    """The API server's checks of a Job's podFailurePolicy, which the OpenAPI schema
    (kubernetes-validate) does not encode. From kubernetes pkg/apis/batch/validation/
    validation.go (validateJobSpec, validatePodFailurePolicy, validatePodFailurePolicyRule,
    validatePodFailurePolicyRuleOnExitCodes; the version with FailIndex, Kubernetes >= 1.28):
    restartPolicy must be Never; at most 20 rules; each rule has exactly one of onExitCodes and
    onPodConditions; operator In or NotIn; containerName one of the pod template's containers
    or initContainers; 1 to 255 values, ordered, unique, and no 0 for In."""
    problems = []
    template = spec["template"]["spec"]
    if template.get("restartPolicy") != "Never":
        problems.append("restartPolicy must be Never with a podFailurePolicy")
    rules = spec["podFailurePolicy"]["rules"]
    if len(rules) > 20:
        problems.append("more than 20 rules")
    names = {c["name"] for c in template["containers"] + template.get("initContainers", [])}
    for i, rule in enumerate(rules):
        if rule.get("action") not in {"Count", "FailJob", "Ignore"}:  # FailIndex needs backoffLimitPerIndex
            problems.append(f"rule {i}: action {rule.get('action')!r}")
        if ("onExitCodes" in rule) == ("onPodConditions" in rule):
            problems.append(f"rule {i}: exactly one of onExitCodes and onPodConditions")
        codes = rule.get("onExitCodes")
        if codes is None:
            continue
        values = codes["values"]
        if codes["operator"] not in {"In", "NotIn"}:
            problems.append(f"rule {i}: operator {codes['operator']!r}")
        if "containerName" in codes and codes["containerName"] not in names:
            problems.append(f"rule {i}: containerName {codes['containerName']!r} is not in the pod template")
        if not 1 <= len(values) <= 255:
            problems.append(f"rule {i}: {len(values)} values")
        if codes["operator"] == "In" and 0 in values:
            problems.append(f"rule {i}: 0 with In")
        if len(set(values)) != len(values) or values != sorted(values):
            problems.append(f"rule {i}: values must be ordered and unique")
    return problems


def job_controller_action(policy, *, exit_code, container="train", init_exit_code=None, conditions=()):
    """What the Job controller does with a failed pod: the first matching rule's action, or
    Count when none matches. Transcribed from kubernetes pkg/controller/job/
    pod_failure_policy.go (matchPodFailurePolicy, matchOnExitCodes,
    getMatchingContainerFromList, isOnExitCodesOperatorMatching; read at commit 2b02db1b, the
    same logic as the GA release 1.31 but for FailIndex): containers before init containers,
    only terminated ones, exit code 0 never matches, containerName restricts the check."""
    statuses = [(container, exit_code)]
    init_statuses = [] if init_exit_code is None else [("prefetch-data", init_exit_code)]

    def exit_matches(req):
        for name, code in statuses + init_statuses:
            if code is None or code == 0:
                continue
            if req.get("containerName") not in (None, name):
                continue
            found = code in req["values"]
            if found if req["operator"] == "In" else not found:
                return True
        return False

    for rule in policy["rules"]:
        if "onExitCodes" in rule:
            if exit_matches(rule["onExitCodes"]):
                return rule["action"]
        elif any((c["type"], c["status"]) == (p["type"], p["status"])
                 for c in conditions for p in rule["onPodConditions"]):
            return rule["action"]
    return "Count"


DISRUPTED = ({"type": "DisruptionTarget", "status": "True"},)


PREFETCH = ("data=arrays", "data.source=s3://bucket/x.npz", "launcher.prefetch_data=true")


@pytest.mark.parametrize("overrides", [(), PREFETCH], ids=["plain", "with-prefetch-init-container"])
def test_job_pod_failure_policy_fails_on_a_runs_own_exit_and_retries_kills(tmp_path, overrides):
    """README: a rank's own failure (1-127) is not retried; 143 (SIGTERM: preempted, drained)
    and 137 (SIGKILL: OOM) are retried within launcher.backoff_limit, and a DisruptionTarget
    pod (preempted, evicted, node lost) does not spend that budget. Before this rule, every
    exit code was counted, so an exit 1 (a NaN loss, a bug) ran backoff_limit + 1 times."""
    manifest = render("k8s-job", tmp_path, *overrides).manifest
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    spec = manifest["spec"]
    assert api_server_problems(spec) == []
    policy = spec["podFailurePolicy"]

    for code in (1, 2, 70, 127):  # an exception, Hydra's usage error, ..., the last non-signal code
        assert job_controller_action(policy, exit_code=code) == "FailJob", code
    for code in (128, 134, 137, 139, 143, 255):  # killed by a signal: SIGABRT, SIGKILL/OOM, SIGSEGV, SIGTERM
        assert job_controller_action(policy, exit_code=code) == "Count", code
    # A preempted pod exits 143 after its checkpoint, or 1 if the kill came at a bad moment:
    # the condition decides first, so neither fails the Job nor spends the budget.
    assert job_controller_action(policy, exit_code=143, conditions=DISRUPTED) == "Ignore"
    assert job_controller_action(policy, exit_code=1, conditions=DISRUPTED) == "Ignore"
    # The rules read the training container only: a failed prefetch-data init container
    # (training never ran; a network error) is retried, not taken for the run's own failure.
    assert job_controller_action(policy, exit_code=None, init_exit_code=1) == "Count"


# ----------------------------------------------------------------- Kueue: which kinds it manages

# Kueue v0.19.2's default integrations.frameworks: config/components/manager/
# controller_manager_config.yaml at tag v0.19.2 (the Helm chart's charts/kueue/values.yaml lists
# the same). "kubeflow.org/pytorchjob" is commented out there, with paddlejob, tfjob, xgboostjob
# and jaxjob (removal planned); a job of a kind not listed keeps its queue label and Kueue never
# suspends, admits or preempts it.
KUEUE_DEFAULT_FRAMEWORKS = (
    "batch/job", "kubeflow.org/mpijob", "ray.io/rayjob", "ray.io/raycluster", "ray.io/rayservice",
    "jobset.x-k8s.io/jobset", "workload.codeflare.dev/appwrapper", "trainer.kubeflow.org/trainjob", "pod",
    "deployment", "statefulset", "leaderworkerset.x-k8s.io/leaderworkerset",
)
KUEUE = ("launcher.queue=team-a", "launcher.priority_class=high")


def kueue_framework(launcher):
    """Kueue's name of a kind's integration: ``<API group>/<kind, lowercase>``."""
    import importlib

    from aegis.launch import LAUNCHERS

    module, name = LAUNCHERS[launcher].kind.split(":")
    kind = getattr(importlib.import_module(module), name)
    return f"{kind.group}/{kind.name.lower()}"


@pytest.mark.parametrize("launcher", ["k8s-job", "pytorchjob", "trainjob"])
def test_a_queue_is_accepted_only_for_a_kind_kueue_manages_by_default(launcher):
    from aegis.config.validation import validate
    from aegis.errors import ConfigError

    cfg = compose_cfg(f"launcher={launcher}", f"launcher.image={IMAGE}", "strategy=ddp", *KUEUE)
    if kueue_framework(launcher) in KUEUE_DEFAULT_FRAMEWORKS:
        validate(cfg)
        return
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    assert str(info.value) == (
        "launcher.queue=team-a and launcher.priority_class=high would be ignored: Kueue manages PyTorchJobs only "
        "with its kubeflow.org/pytorchjob integration, which its default configuration leaves off (v0.19), so the "
        "job would run at once, outside the queue's quota and never preempted: expected launcher=trainjob, which "
        "Kueue manages by default, or launcher.kueue_pytorchjob=enabled for a cluster whose Kueue enables that "
        "integration.")
    # A cluster whose Kueue lists kubeflow.org/pytorchjob again says so, and the labels are rendered.
    validate(compose_cfg(f"launcher={launcher}", f"launcher.image={IMAGE}", "strategy=ddp", *KUEUE,
                         "launcher.kueue_pytorchjob=enabled"))


def test_kueue_pytorchjob_takes_enabled_or_disabled():
    from aegis.config.validation import validate
    from aegis.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^launcher.kueue_pytorchjob='on' is invalid: expected one of "
                                          r"'disabled', 'enabled'.$"):
        validate(compose_cfg("launcher=pytorchjob", f"launcher.image={IMAGE}", "launcher.kueue_pytorchjob=on"))


# ----------------------------------------------------------------- KubeRay: the probes it injects

def kuberay_probe(ray_version):
    """The probe KubeRay v1.7.0 injects into a Ray head or worker container: ``"http"`` (GET
    /api/healthz on the dashboard agent's port) or ``"exec"`` (``bash -c 'wget ... | grep
    success'``). From ray-operator/controllers/ray/common/pod.go at tag v1.7.0:
    initLivenessAndReadinessProbe branches on supportsUnifiedHealthCheck(spec.rayVersion), which
    is ``version.ParseGeneric(rayVersion)`` (k8s.io/apimachinery util/version: two or more
    dot-separated numbers, an optional leading "v", anything after) ``.AtLeast(2.53.0)``, and
    false when the version does not parse (no rayVersion at all included); the exec command is
    utils.BaseWgetHealthCommand (ray-operator/controllers/ray/utils/constant.go)."""
    import re

    match = re.fullmatch(r"\s*v?([0-9]+(?:\.[0-9]+)+).*", ray_version or "", re.S)
    if match is None:
        return "exec"
    numbers = [int(n) for n in match[1].split(".")]
    return "http" if (numbers + [0, 0])[:3] >= [2, 53, 0] else "exec"


@pytest.mark.parametrize("version, probe", [(None, "exec"), ("", "exec"), ("nightly", "exec"), ("2.52.1", "exec"),
                                            ("2.53", "http"), ("2.53.0", "http"), ("2.60.0", "http"),
                                            ("v2.60.0rc1", "http"), ("3.0.0", "http")])
def test_the_transcribed_kuberay_rule(version, probe):
    assert kuberay_probe(version) == probe


def the_rayjob(tmp_path, *overrides):
    return render_search(tmp_path, *overrides).manifest


def test_a_rayjob_names_the_ray_installed_here_so_kuberay_injects_http_probes(tmp_path, no_build_record, crd_schema):
    """The training image has no wget (docker/Dockerfile.training and build.sh's offline base
    install none), so the exec probes KubeRay injects without a rayVersion always fail: the
    RayCluster never becomes Ready, the RayJob never submits the search, and the liveness probe
    restarts the pods. Before this, no rayVersion was rendered."""
    import importlib.metadata

    manifest = the_rayjob(tmp_path)
    version = manifest["spec"]["rayClusterSpec"].get("rayVersion")
    assert version == importlib.metadata.version("ray")  # no build record: the Ray installed here
    assert kuberay_probe(version) == "http"
    assert crd_errors(crd_schema, manifest) == []  # the upstream KubeRay v1.7.0 RayJob CRD, strict


def test_the_ray_version_is_the_images_when_docker_build_recorded_it(tmp_path, no_build_record):
    import json

    build = {"id": "sha256:" + "1" * 64, "accelerator": "cpu", "revision": None, "dirty": False,
             "extras": ["kuberay", "tune"], "built_at": "2026-01-01T00:00:00Z", "digest": None}
    no_build_record.write_text(json.dumps({IMAGE: {**build, "ray_version": "2.61.3"}}))
    assert the_rayjob(tmp_path)["spec"]["rayClusterSpec"]["rayVersion"] == "2.61.3"
    # launcher.ray_version states it for an image built elsewhere, and wins over a record.
    manifest = the_rayjob(tmp_path, "launcher.ray_version=2.58.0")
    assert manifest["spec"]["rayClusterSpec"]["rayVersion"] == "2.58.0"


def test_a_ray_version_nobody_knows_is_one_sentence(tmp_path, no_build_record, monkeypatch):
    import importlib.metadata

    from aegis.config.validation import validate
    from aegis.errors import ConfigError

    real = importlib.metadata.version

    def no_ray_here(name):
        if name == "ray":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", no_ray_here)
    with pytest.raises(ConfigError) as info:
        validate(search_cfg()[0])
    assert str(info.value) == (
        f"launcher.ray_version is unknown for launcher.image={IMAGE}: docker/build.sh recorded no Ray version for it "
        f"in {no_build_record} and no Ray is installed here, and without one KubeRay injects probes that run wget, "
        "which the image lacks, so its Ray pods never become Ready: expected launcher.ray_version=<the image's Ray "
        "release>, e.g. 2.60.0.")
    validate(search_cfg("launcher.ray_version=2.60.0")[0])
    with pytest.raises(ConfigError, match=r"^launcher.ray_version='latest' is not a Ray version: expected the "
                                          r"release of the Ray in launcher.image, e.g. 2.60.0.$"):
        validate(search_cfg("launcher.ray_version=latest")[0])

