"""What Kubeflow Trainer, JobSet and the Job controller do with a TrainJob's failures, on the
runtime ``launcher=trainjob`` names by default, transcribed from their source.

Trainer v2.3.0 builds the TrainJob's JobSet from the runtime's template (the whole JobSetSpec,
failurePolicy included: pkg/runtime/core/trainingruntime.go, then the jobset plugin's Build in
pkg/runtime/framework/plugins/jobset/jobset.go), one node Job of ``numNodes`` indexed pods
(SyncParallelCount: parallelism = completions = numNodes, replicas 1). A TrainJob cannot change
restartPolicy, backoffLimit, podFailurePolicy or failurePolicy (runtimePatches:
pkg/apis/trainer/v1alpha1/trainjob_types.go, JobSpecPatch has only ``template``), so the
runtime decides every retry. README: a rank's own failure (1-127) is not retried; 143 (SIGTERM,
after a checkpoint) and 137 (SIGKILL, the OOM killer) are, within a budget.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys

import jsonschema
import kubernetes_validate
import pytest
import yaml

from aegis.k8s.validate import KUBERNETES_VERSION
from aegis.launch.trainjob import runtime as aegis_runtime
from aegis.launch.trainjob.validate import node_pod_template, runtime_problems, validate_runtime
from k8s_helpers import IMAGE, ROOT, compose_cfg
from test_k8s_controllers import DISRUPTED, api_server_problems, job_controller_action, render
from test_k8s_trainjob import strict

SCHEMAS = ROOT.parent / "shared" / "schemas"
UPSTREAM_RUNTIME = SCHEMAS / "torch-distributed-runtime.helm.yaml"
RUNTIME_CRD = SCHEMAS / "trainer.kubeflow.org_clustertrainingruntimes.yaml"


def upstream_torch_distributed():
    """Trainer v2.3.0's torch-distributed ClusterTrainingRuntime (charts/kubeflow-trainer/files/
    runtimes/torch-distributed.yaml), its Helm template lines (labels only) dropped."""
    if not UPSTREAM_RUNTIME.is_file():
        pytest.skip(f"the upstream torch-distributed runtime is not at {UPSTREAM_RUNTIME}")
    lines = [line for line in UPSTREAM_RUNTIME.read_text().splitlines() if "{{" not in line]
    return yaml.safe_load("\n".join(lines))


def runtime_of(tmp_path, *overrides):
    """The TrainJob the config renders, and the runtime its runtimeRef names: Aegis's, rendered
    from the same config, or Trainer's torch-distributed as upstream ships it."""
    plan = render("trainjob", tmp_path, "strategy=ddp", *overrides)
    name = plan.manifest["spec"]["runtimeRef"]["name"]
    if name == "torch-distributed":
        return plan, upstream_torch_distributed()
    assert name == aegis_runtime.NAME
    return plan, plan.settings["runtime"]


class JobSetRun:
    """The JobSet Trainer creates from ``runtime``, failing pod by pod.

    - JobSet v0.12.0 pkg/webhooks/jobset_webhook.go (Default): a pod template without a
      restartPolicy gets OnFailure; a Job without backoffLimit gets the batch default, 6
      (kubernetes pkg/apis/batch/v1/defaults.go), shared by all its pods.
    - kubernetes pkg/controller/job: with restartPolicy OnFailure the kubelet restarts the failed
      container in its pod and the Job counts the restarts against backoffLimit (the API server
      allows a podFailurePolicy only with Never); with Never, matchPodFailurePolicy decides
      (``job_controller_action``): Ignore replaces the pod uncounted, FailJob fails the Job with
      reason PodFailurePolicy, Count counts it, and more than backoffLimit counted failures fail
      it with BackoffLimitExceeded.
    - JobSet v0.12.0 pkg/controllers/failure_policy.go (executeFailurePolicy): no failurePolicy:
      the JobSet fails (FailedJobs) on the first failed Job; otherwise the first rule whose
      onJobFailureReasons (empty: any) holds the Job's reason and whose targetReplicatedJobs
      (empty: any) holds its replicated job; no rule matched: RestartJobSet. RestartJobSet fails
      the JobSet (ReachedMaxRestarts) once restartsCountTowardsMax >= maxRestarts, otherwise
      recreates every Job and counts one; RestartJobSetAndIgnoreMaxRestarts recreates uncounted;
      FailJobSet fails it (FailJobSetFailurePolicyAction).
    """

    def __init__(self, runtime):
        jobset = runtime["spec"]["template"]["spec"]
        [self.job] = [j for j in jobset["replicatedJobs"] if j["name"] == "node"]
        job_spec = self.job["template"]["spec"]
        self.restart_policy = job_spec["template"]["spec"].get("restartPolicy") or "OnFailure"
        self.backoff_limit = job_spec.get("backoffLimit", 6)
        self.pod_policy = job_spec.get("podFailurePolicy")
        self.failure_policy = jobset.get("failurePolicy")
        self.counted_restarts = 0  # status.restartsCountTowardsMax
        self.restarts = 0  # status.restarts
        self.job_failures = 0  # the current node Job's counted failures (a new Job after a restart)
        self.failed = None

    def pod_fails(self, exit_code, conditions=()):
        """One node pod fails; what happens next, in words."""
        assert self.failed is None, "the JobSet has already failed"
        if self.restart_policy == "OnFailure" and not conditions:
            self.job_failures += 1  # a container restart, counted against backoffLimit
            if self.job_failures <= self.backoff_limit:
                return "restarted in place"
            return self._job_failed("BackoffLimitExceeded")
        action = job_controller_action(self.pod_policy, exit_code=exit_code, container="node",
                                       conditions=conditions) if self.pod_policy else "Count"
        if action == "Ignore":
            return "pod replaced"
        if action == "FailJob":
            return self._job_failed("PodFailurePolicy")
        self.job_failures += 1
        if self.job_failures <= self.backoff_limit:
            return "pod replaced"
        return self._job_failed("BackoffLimitExceeded")

    def _job_failed(self, reason):
        if self.failure_policy is None:
            return self._fail("FailedJobs")
        action = "RestartJobSet"
        for rule in self.failure_policy.get("rules") or []:
            if (not rule.get("onJobFailureReasons") or reason in rule["onJobFailureReasons"]) and (
                    not rule.get("targetReplicatedJobs") or "node" in rule["targetReplicatedJobs"]):
                action = rule["action"]
                break
        if action == "FailJobSet":
            return self._fail("FailJobSetFailurePolicyAction")
        if action == "RestartJobSet" and self.counted_restarts >= self.failure_policy.get("maxRestarts", 0):
            return self._fail("ReachedMaxRestarts")
        assert action in ("RestartJobSet", "RestartJobSetAndIgnoreMaxRestarts"), action
        self.restarts += 1
        self.counted_restarts += action == "RestartJobSet"
        self.job_failures = 0
        return "gang restarted"

    def _fail(self, reason):
        self.failed = reason
        return f"failed ({reason})"


OWN = (1, 2, 70, 127)  # an exception, Hydra's usage error, ..., the last non-signal code
KILLED = (137, 143)  # SIGKILL (the OOM killer), SIGTERM after a checkpoint


@pytest.mark.parametrize("code", OWN)
def test_a_ranks_own_failure_fails_the_trainjob_at_once(tmp_path, code):
    """On torch-distributed (the default before) a pod exiting 1 was restarted in place by the
    kubelet (OnFailure) up to 6 times: a NaN loss ran seven times."""
    _, runtime = runtime_of(tmp_path)
    run = JobSetRun(runtime)
    assert run.pod_fails(code) == "failed (FailJobSetFailurePolicyAction)"
    assert run.restarts == 0


@pytest.mark.parametrize("code", KILLED)
@pytest.mark.parametrize("max_restarts", [None, 0, 1, 5])
def test_a_killed_gang_restarts_up_to_max_restarts(tmp_path, code, max_restarts):
    overrides = () if max_restarts is None else (f"launcher.max_restarts={max_restarts}",)
    plan, runtime = runtime_of(tmp_path, *overrides)
    expected = 3 if max_restarts is None else max_restarts
    run = JobSetRun(runtime)
    for _ in range(expected):
        assert run.pod_fails(code) == "gang restarted"  # every pod recreated, resuming from last.ckpt
    assert run.pod_fails(code) == "failed (ReachedMaxRestarts)"
    assert run.restarts == expected
    # ... and the rank's own failure after some restarts still ends it at once
    run = JobSetRun(runtime)
    if expected:
        assert run.pod_fails(code) == "gang restarted"
    assert run.pod_fails(1) == "failed (FailJobSetFailurePolicyAction)"


@pytest.mark.parametrize("code", [143, 137, 1])
def test_a_disrupted_pod_is_replaced_and_a_gang_restart_is_counted_once(tmp_path, code):
    """A DisruptionTarget pod (preempted, evicted, drained, node lost) exits 143 after its
    checkpoint, 137 at the grace period's end, or anything if its node vanished mid-write: the
    Job replaces it without counting. One node: nothing else happens, the new pod resumes. A
    gang of several: the peers stop at the same step and exit 143 (aegis.launch.gang), which is
    counted, so the whole gang restarts once, counted against launcher.max_restarts."""
    _, runtime = runtime_of(tmp_path)
    alone = JobSetRun(runtime)
    for _ in range(10):  # never spends the budget, however often the cluster disrupts it
        assert alone.pod_fails(code, conditions=DISRUPTED) == "pod replaced"
    assert alone.restarts == 0 and alone.failed is None

    gang = JobSetRun(runtime)
    assert gang.pod_fails(code, conditions=DISRUPTED) == "pod replaced"
    assert gang.pod_fails(143) == "gang restarted"  # node 1, whose peer went away
    assert gang.counted_restarts == 1


def test_torch_distributed_is_still_possible_and_does_what_upstream_does(tmp_path):
    """launcher.runtime=torch-distributed: no runtime of Aegis's; what Trainer's own runtime does
    on failures (the sentence in docs/kubernetes.md): pods restarted in place (OnFailure) up to
    backoffLimit 6 shared by every node pod, whatever the exit code, then the JobSet fails on
    that first failed Job (no failurePolicy)."""
    plan, runtime = runtime_of(tmp_path, "launcher.runtime=torch-distributed")
    assert plan.manifest["spec"]["runtimeRef"]["name"] == "torch-distributed"
    assert plan.settings["runtime"] is None
    for code in (1, 143):
        run = JobSetRun(runtime)
        assert [run.pod_fails(code) for _ in range(6)] == ["restarted in place"] * 6
        assert run.pod_fails(code) == "failed (FailedJobs)"


# --------------------------------------------------------------------------- admission

def test_the_runtime_is_admitted(tmp_path):
    """Trainer v2.3.0 pkg/webhooks/trainingruntime_webhook.go (replicas 1, the ancestor's
    container), JobSet v0.12.0 pkg/webhooks/jobset_webhook.go (validateFailurePolicy: rule names,
    reasons, targets), the API server's podFailurePolicy rules (kubernetes pkg/apis/batch/
    validation/validation.go, ``api_server_problems``), the node Job against the batch/v1 schema."""
    _, runtime = runtime_of(tmp_path)
    assert runtime_problems(runtime) == []
    job = runtime["spec"]["template"]["spec"]["replicatedJobs"][0]
    assert job["name"] == "node" and job["replicas"] == 1
    assert job["template"]["metadata"]["labels"] == {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}
    assert api_server_problems(job["template"]["spec"]) == []
    kubernetes_validate.validate({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "aegis-torch-node"},
                                  "spec": job["template"]["spec"]}, KUBERNETES_VERSION, strict=True)
    assert runtime["spec"]["mlPolicy"] == {"numNodes": 1, "torch": {}}  # v2.3: numProcPerNode is the TrainJob's


def test_replicated_job_names_fit_trainer_v2_4(tmp_path):
    """Trainer v2.4.0 refuses a runtime whose ReplicatedJob names exceed 20 characters."""
    _, runtime = runtime_of(tmp_path)
    assert all(len(j["name"]) <= 20 for j in runtime["spec"]["template"]["spec"]["replicatedJobs"])
    long = copy.deepcopy(runtime)
    long["spec"]["template"]["spec"]["replicatedJobs"][0]["name"] = "node-with-a-long-name"
    assert any("at most 20 characters" in p for p in runtime_problems(long))


def test_checked_in_runtime_and_trainjob_patch_names_fit_trainer_v2_4(tmp_path):
    """Beyond the runtime rendered here: the runtime in k8s/ that clusters apply, and the
    replicated job a TrainJob's runtimePatches name (an RFC 1035 label on master after v2.3,
    kubeflow/trainer ee169160f), so the same manifests are meant for Trainer v2.4."""
    checked_in = yaml.safe_load((ROOT / "k8s" / "clustertrainingruntime-aegis-torch.yaml").read_text())
    assert runtime_problems(checked_in) == []
    trainjob = render("trainjob", tmp_path).manifest
    for patch in trainjob["spec"]["runtimePatches"]:
        for job in patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]:
            assert len(job["name"]) <= 20 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", job["name"])


@pytest.mark.parametrize("change, words", [
    (lambda r: r["spec"]["template"]["spec"].pop("failurePolicy"), "needs a failurePolicy"),
    (lambda r: r["spec"]["template"]["spec"]["failurePolicy"]["rules"][0].update(name="own-failure"),
     "must match"),
    (lambda r: r["spec"]["template"]["spec"]["failurePolicy"]["rules"][1].update(name="RanksOwnFailure"),
     "unique"),
    (lambda r: r["spec"]["template"]["spec"]["failurePolicy"]["rules"][0].update(onJobFailureReasons=["OOM"]),
     "not a Job failure reason"),
    (lambda r: r["spec"]["template"]["spec"]["failurePolicy"]["rules"][0].update(targetReplicatedJobs=["worker"]),
     "not a replicated job"),
    (lambda r: r["spec"]["template"]["spec"]["replicatedJobs"][0].update(replicas=2), "replicas 1"),
    (lambda r: r["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"].update(
        restartPolicy="OnFailure"), "restartPolicy Never"),
    (lambda r: r["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"].pop(
        "automountServiceAccountToken"), "service-account token"),
    (lambda r: r["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"].update(backoffLimit=6),
     "backoffLimit 0"),
])
def test_what_the_runtime_check_refuses(tmp_path, change, words):
    from aegis.errors import ConfigError

    _, runtime = runtime_of(tmp_path)
    change(runtime)
    assert any(words in p for p in runtime_problems(runtime)), runtime_problems(runtime)
    with pytest.raises(ConfigError, match="would be refused"):
        validate_runtime(runtime)


def test_the_runtime_passes_the_upstream_crd_when_it_is_there(tmp_path):
    """The ClusterTrainingRuntime CRD (kubeflow/trainer manifests/base/crds/
    trainer.kubeflow.org_clustertrainingruntimes.yaml at v2.3.0), closed against unknown fields,
    when ../shared/schemas carries it."""
    if not RUNTIME_CRD.is_file():
        pytest.skip(f"the upstream ClusterTrainingRuntime CRD is not at {RUNTIME_CRD}")
    crd = yaml.safe_load(RUNTIME_CRD.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    _, runtime = runtime_of(tmp_path)
    errors = list(jsonschema.Draft7Validator(strict(version["schema"]["openAPIV3Schema"])).iter_errors(runtime))
    assert errors == []


def test_the_node_pod_never_mounts_the_service_account_token(tmp_path):
    """The TrainJob cannot say it (no runtimePatches field: trainjob_types.go v2.3.0); the
    runtime's pod template does, and the patch Aegis sends leaves it alone."""
    plan, runtime = runtime_of(tmp_path, "launcher.service_account=trainer")
    pod = runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert "automountServiceAccountToken" not in node_pod_template(plan.manifest)["spec"]


def test_a_namespaced_runtime_is_rendered_in_the_namespace(tmp_path):
    _, runtime = runtime_of(tmp_path, "launcher.runtime_kind=TrainingRuntime", "launcher.namespace=team-a")
    assert runtime["kind"] == "TrainingRuntime" and runtime["metadata"]["namespace"] == "team-a"
    assert runtime_problems(runtime) == []


def test_the_checked_in_runtime_is_the_default_one():
    on_disk = yaml.safe_load((ROOT / "k8s" / aegis_runtime.FILE).read_text())
    assert on_disk["metadata"]["name"] == compose_cfg("launcher=trainjob", f"launcher.image={IMAGE}").launcher.runtime
    assert on_disk["spec"]["template"]["spec"]["failurePolicy"]["maxRestarts"] == 3


def test_the_dry_run_prints_the_trainjob_and_names_its_runtime(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "strategy=ddp", "launcher=trainjob",
         "launcher.image=registry.example.com/ml/aegis:1.0", "launcher.dry_run=true", "run_id=dry"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(ROOT / "src"), "AEGIS_OUTPUT_ROOT": str(out), "KUBECONFIG": str(tmp_path / "none"),
             "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = yaml.safe_load(result.stdout)  # stdout is the TrainJob alone: kubectl create -f - takes it
    assert manifest["kind"] == "TrainJob" and manifest["spec"]["runtimeRef"]["name"] == "aegis-torch"
    run_dir = out / "train" / "runs" / "dry"
    assert (f"[k8s] runtime: this TrainJob needs the ClusterTrainingRuntime aegis-torch (exit 1-127 fails it at "
            f"once; 143/137 restart the gang up to 3 times): kubectl apply -f k8s/{aegis_runtime.FILE} (rendered "
            f"from this config: {run_dir / 'clustertrainingruntime.yaml'})") in result.stderr
    written = yaml.safe_load((run_dir / "clustertrainingruntime.yaml").read_text())
    assert runtime_problems(written) == []
