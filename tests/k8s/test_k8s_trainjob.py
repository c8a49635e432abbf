"""launcher=trainjob: the rendered TrainJob against the upstream v2.3.0 CRD (strict on unknown
fields) and Trainer's admission rules, what its node pods run, and its life against the fake
API server (submit, status from its conditions and its JobSet's pods, every node's logs,
follow, cancel) from a new process that knows only the run dir."""

from __future__ import annotations

import copy
import json
import os
import subprocess

import jsonschema
import pytest
import yaml

from aegis.errors import ConfigError
from aegis.k8s.status import job_status
from aegis.launch.trainjob.kind import TRAINJOB, longest_pod_name
from aegis.launch.trainjob.validate import node_pod_template, trainjob_problems, validate_trainjob
from helpers import crd_schema as upstream_crd_schema
from k8s_helpers import IMAGE, ROOT, compose_cfg
from test_k8s_lifecycle import reattach, reattach_args, submit, the_object
from test_k8s_render import overrides_of, render

CRD = ROOT.parent / "shared" / "schemas" / "trainer.kubeflow.org_trainjobs.yaml"
RESERVED = ("PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT")


def strict(schema):
    """The CRD's schema with every object closed: an unknown field anywhere is an error, as the
    API server's pruning would silently drop it (x-kubernetes-preserve-unknown-fields aside)."""
    schema = copy.deepcopy(schema)

    def close(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node and not node.get(
                    "x-kubernetes-preserve-unknown-fields"):
                node.setdefault("additionalProperties", False)
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    return schema


@pytest.fixture(scope="module")
def crd_schema():
    if not CRD.is_file():
        pytest.skip(f"the upstream TrainJob CRD is not at {CRD} (../shared/schemas beside the checkout)")
    return strict(upstream_crd_schema(CRD.name, "v1alpha1"))


def crd_errors(schema, manifest):
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in jsonschema.Draft7Validator(schema).iter_errors(manifest)]


def test_the_strict_schema_catches_an_unknown_field(tmp_path, crd_schema):
    manifest = render("trainjob", tmp_path).manifest
    manifest["spec"]["trainer"]["nprocPerNode"] = 2  # PyTorchJob's spelling
    manifest["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0][
        "template"]["spec"]["template"]["spec"]["priorityClassName"] = "high"  # no such patch field in v2.3
    errors = crd_errors(crd_schema, manifest)
    assert len(errors) == 2 and any("nprocPerNode" in e for e in errors) and any("priorityClassName" in e for e in errors)


def test_trainjob_is_what_the_crd_accepts_and_runs_torchrun_on_the_torch_runtime(tmp_path, crd_schema):
    plan = render("trainjob", tmp_path, "strategy=ddp", "launcher.nodes=2", "launcher.nproc_per_node=2",
                  "model.lr=0.01")
    manifest = plan.manifest
    assert crd_errors(crd_schema, manifest) == []
    assert trainjob_problems(manifest) == []
    spec = manifest["spec"]
    assert manifest["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and manifest["kind"] == "TrainJob"
    assert spec["runtimeRef"] == {"apiGroup": "trainer.kubeflow.org", "kind": "ClusterTrainingRuntime",
                                  "name": "aegis-torch"}  # Aegis's runtime: tests/k8s/test_k8s_trainjob_runtime.py
    trainer = spec["trainer"]
    assert trainer["numNodes"] == 2 and trainer["numProcPerNode"] == 2 and trainer["image"] == IMAGE
    # args, not command: the image's init stays PID 1, in front of the gang's supervisor and torchrun
    assert "command" not in trainer
    args = trainer["args"]
    assert args[:4] == ["python", "-m", "aegis.launch.gang", "torchrun"] and args[4] == "train.py"
    assert not any(a.startswith("--") for a in args)  # torchrun is driven by the plugin's PET_* only
    assert {"strategy=ddp", "launcher=local", "model.lr=0.01", "paths.root=/outputs",
            f"run_id={plan.run_id}", f"hydra.run.dir=/outputs/train/runs/{plan.run_id}"} <= set(args)
    env = {e["name"]: e.get("value") for e in trainer["env"]}
    assert not set(RESERVED) & set(env)
    assert env["AEGIS_SUPERVISED"] == "1" and env["AEGIS_TERMINATION_GRACE_S"] == "60"
    assert env["AEGIS_OUTPUT_ROOT"] == "/outputs"
    assert trainer["resourcesPerNode"] == {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "2Gi"}}
    assert "suspend" not in spec  # never forced: Kueue (or the default) decides
    # the pod-level settings, through the one runtimePatches entry
    [patch] = spec["runtimePatches"]
    assert patch["manager"] == "aegis.dev/launcher"
    [job] = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert job["name"] == "node"
    pod = job["template"]["spec"]["template"]
    assert pod["metadata"]["labels"]["aegis.dev/run-id"] == plan.run_id
    assert pod["spec"]["terminationGracePeriodSeconds"] == 60
    assert pod["spec"]["securityContext"]["runAsUser"] == 1000 and pod["spec"]["securityContext"]["fsGroup"] == 1000
    vols = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert vols["outputs"]["persistentVolumeClaim"] == {"claimName": "aegis-outputs"}
    assert vols["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "512Mi"}
    [node] = pod["spec"]["containers"]
    assert node["name"] == "node" and set(node) == {"name", "securityContext", "volumeMounts"}
    assert {m["name"]: m["mountPath"] for m in node["volumeMounts"]} == {"outputs": "/outputs", "dshm": "/dev/shm"}
    assert node["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_the_node_pod_is_the_pod_every_launcher_runs(tmp_path):
    """Split between trainer and runtimePatches, then put together as Trainer does: the same
    container and pod a PyTorchJob pod gets, but for the names the operators require."""
    tj = render("trainjob", tmp_path, "launcher.nodes=2", "launcher.termination_grace_period_s=300",
                "launcher.service_account=trainer", "+launcher.node_selector.pool=cpu",
                "launcher.tolerations=[{key: dedicated, operator: Exists, effect: NoSchedule}]",
                "launcher.image_pull_secrets=[regcred]", "+launcher.secret_env.MLFLOW_TRACKING_TOKEN=mlflow/token",
                "data.uses_dataset_cache=true", "run_id=same").manifest
    ptj = render("pytorchjob", tmp_path, "launcher.nodes=2", "launcher.termination_grace_period_s=300",
                 "launcher.service_account=trainer", "+launcher.node_selector.pool=cpu",
                 "launcher.tolerations=[{key: dedicated, operator: Exists, effect: NoSchedule}]",
                 "launcher.image_pull_secrets=[regcred]", "+launcher.secret_env.MLFLOW_TRACKING_TOKEN=mlflow/token",
                 "data.uses_dataset_cache=true", "run_id=same").manifest
    node = node_pod_template(tj)["spec"]
    master = ptj["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    for key in ("terminationGracePeriodSeconds", "serviceAccountName", "securityContext", "nodeSelector",
                "tolerations", "imagePullSecrets", "volumes"):
        assert node[key] == master[key], key
    [a], [b] = node["containers"], master["containers"]
    for key in ("image", "resources", "volumeMounts", "securityContext"):
        assert a[key] == b[key], key
    # the launch the user asked for (its lineage): trainjob here, pytorchjob there; and the PyTorchJob
    # pods' own restart budget (aegis.launch.restart_budget), which a TrainJob's JobSet enforces instead
    from aegis.launch import restart_budget as rb

    own = {"AEGIS_LAUNCH", rb.MAX_ATTEMPTS_ENV, rb.ATTEMPTS_DIR_ENV, rb.POD_NAME_ENV, rb.POD_UID_ENV}
    assert [e for e in a["env"] if e["name"] not in own] == [e for e in b["env"] if e["name"] not in own]
    assert a["args"] == b["args"]


def test_the_pod_command_composes_to_a_valid_local_ddp_run(tmp_path):
    from aegis.config.validation import validate

    plan = render("trainjob", tmp_path, "model.lr=0.01", "data=synthetic")
    cfg = compose_cfg(*overrides_of(plan.manifest["spec"]["trainer"]))
    validate(cfg)
    assert cfg.launcher.name == "local" and cfg.strategy.name == "ddp" and cfg.paths.root == "/outputs"
    assert cfg.run_id == plan.run_id and cfg.hydra.run.dir == plan.pod_run_dir and cfg.model.lr == 0.01


def test_a_namespaced_runtime_and_a_deadline(tmp_path, crd_schema):
    plan = render("trainjob", tmp_path, "launcher.runtime=my-torch", "launcher.runtime_kind=TrainingRuntime",
                  "launcher.active_deadline_seconds=3600", "launcher.nodes=1")
    assert crd_errors(crd_schema, plan.manifest) == []
    assert plan.manifest["spec"]["runtimeRef"] == {"apiGroup": "trainer.kubeflow.org", "kind": "TrainingRuntime",
                                                   "name": "my-torch"}
    assert plan.manifest["spec"]["activeDeadlineSeconds"] == 3600


@pytest.mark.parametrize("nodes", [1, 10, 11, 1000, 100000])
def test_derived_names_leave_room_for_every_nodes_pod_name(tmp_path, nodes):
    plan = render("trainjob", tmp_path, f"launcher.nodes={nodes}", "task_name=" + "long-experiment-name" * 4)
    pod_name = longest_pod_name(plan.name, nodes)
    assert len(pod_name) <= 63 and plan.name.startswith("long-experiment-name")


def _broken(manifest, change):
    manifest = copy.deepcopy(manifest)
    change(manifest)
    return manifest


def _patch_pod(m):
    return m["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0][
        "template"]["spec"]["template"]["spec"]


# (the change, the words of the admission check's sentence, whether the CRD schema alone refuses it)
@pytest.mark.parametrize("change, words, crd_refuses", [
    (lambda m: m["spec"]["trainer"]["env"].append({"name": "PET_NNODES", "value": "3"}), "PET_NNODES", False),
    (lambda m: m["metadata"].update(name="j" * 50), "pod names like", False),
    (lambda m: m["spec"]["trainer"].update(numNodes=0), "numNodes=0", False),
    (lambda m: m["spec"]["trainer"].update(numProcPerNode=0), "numProcPerNode=0", False),
    (lambda m: m["spec"]["runtimeRef"].update(kind="Bogus"), "launcher.runtime_kind='Bogus'", False),
    (lambda m: m["spec"]["trainer"].update(command=["torchrun"]), "never trainer.command", False),
    (lambda m: _patch_pod(m)["containers"][0].update(name="trainer"), "may only patch 'node'", False),
    (lambda m: m["metadata"].update(name="1-starts-with-digit"), "DNS-1035", False),
])
def test_admission_rules_the_crd_schema_does_not_encode(tmp_path, crd_schema, change, words, crd_refuses):
    manifest = _broken(render("trainjob", tmp_path, "launcher.nodes=2").manifest, change)
    assert bool(crd_errors(crd_schema, manifest)) == crd_refuses
    with pytest.raises(ConfigError, match=words) as refused:
        validate_trainjob(manifest)
    assert "\n" not in str(refused.value)


def test_the_node_pod_is_schema_checked(tmp_path):
    manifest = _broken(render("trainjob", tmp_path).manifest,
                       lambda m: _patch_pod(m).update(tolerations=[{"key": "a", "tolerationSecs": 1}]))
    with pytest.raises(ConfigError, match="launcher.tolerations"):
        validate_trainjob(manifest)


# ------------------------------------------------------------ the lifecycle, against the fake API server

def trainjob_pods(fake, name, nodes):
    """Pods as JobSet and the Indexed Job controller label them: <name>-node-0-<index>-<random>."""
    pods = {}
    for index in range(nodes):
        labels = {TRAINJOB.job_label: name, "jobset.sigs.k8s.io/replicatedjob-name": "node",
                  "jobset.sigs.k8s.io/job-index": "0", "batch.kubernetes.io/job-completion-index": str(index)}
        pod = fake.add_pod(f"{name}-node-0-{index}-x{index}z9", labels, "node")["metadata"]["name"]
        fake.container_state(pod, {"running": {}}, phase="Running")
        pods[f"node-{index}"] = pod
    fake.set_status("trainjobs", name, {"conditions": [
        {"type": "Created", "status": "True", "reason": "JobSetCreated", "message": "created"}]})
    return pods


def test_submit_writes_the_ref_and_the_api_got_the_trainjob(tmp_path, fake_cluster):
    run_dir = submit(tmp_path, "trainjob", "strategy=ddp", "launcher.nodes=3", "launcher.nproc_per_node=2")
    plural, name, obj = the_object(fake_cluster)
    assert plural == "trainjobs" and obj["spec"]["trainer"]["numNodes"] == 3
    assert ("POST", "/apis/trainer.kubeflow.org/v1alpha1/namespaces/default/trainjobs") in fake_cluster.requests
    ref = json.loads((run_dir / "job.json").read_text())
    assert (ref["launcher"], ref["kind"], ref["name"]) == ("trainjob", "TrainJob", name)
    assert yaml.safe_load((run_dir / "trainjob.yaml").read_text())["metadata"]["name"] == name


def test_status_from_conditions_and_pods_and_every_nodes_logs(tmp_path, fake_cluster):
    run_dir = submit(tmp_path, "trainjob", "strategy=ddp", "launcher.nodes=3")
    _, name, _ = the_object(fake_cluster)
    [status] = reattach(run_dir, "status")
    assert status["state"] == "pending" and status["replicas"] == []
    pods = trainjob_pods(fake_cluster, name, 3)
    fake_cluster.log(pods["node-0"], "rank 0: epoch 1")
    fake_cluster.log(pods["node-2"], "rank 2: joined", "rank 2: epoch 1")
    status, *primary = reattach(run_dir, "status", "logs")
    assert status["state"] == "running"
    assert [(r["name"], r["state"]) for r in status["replicas"]] == [
        ("node-0", "running"), ("node-1", "running"), ("node-2", "running")]
    assert primary == ["rank 0: epoch 1"]
    assert reattach(run_dir, "logs:node-2") == ["rank 2: joined", "rank 2: epoch 1"]
    assert reattach(run_dir, f"logs:{pods['node-2']}") == ["rank 2: joined", "rank 2: epoch 1"]
    err = reattach(run_dir, "logs:node-7", ok=False)
    assert f"TrainJob default/{name} has no replica node-7: its replicas are node-0, node-1, node-2." in err

    for pod in pods.values():
        fake_cluster.container_state(pod, {"terminated": {"exitCode": 0, "reason": "Completed"}}, phase="Succeeded")
    fake_cluster.set_status("trainjobs", name, {"conditions": [
        {"type": "Created", "status": "True"}, {"type": "Complete", "status": "True", "reason": "AllJobsCompleted"}]})
    [status] = reattach(run_dir, "status")
    assert status["state"] == "succeeded" and status["exit_code"] == 0


def test_following_node_one_streams_to_the_end_and_a_failure_has_rank_zeros_code(tmp_path, fake_cluster):
    run_dir = submit(tmp_path, "trainjob", "strategy=ddp", "launcher.nodes=2")
    _, name, _ = the_object(fake_cluster)
    pods = trainjob_pods(fake_cluster, name, 2)
    fake_cluster.log(pods["node-1"], "rank 1: epoch 1")
    proc = subprocess.Popen(reattach_args(run_dir, "follow:node-1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    try:
        assert json.loads(proc.stdout.readline()) == "rank 1: epoch 1"
        fake_cluster.log(pods["node-1"], "rank 1: epoch 2")
        assert json.loads(proc.stdout.readline()) == "rank 1: epoch 2"
        fake_cluster.container_state(pods["node-0"], {"terminated": {"exitCode": 3, "reason": "Error"}}, phase="Failed")
        fake_cluster.container_state(pods["node-1"], {"terminated": {"exitCode": 143}}, phase="Failed")
        fake_cluster.set_status("trainjobs", name, {"conditions": [
            {"type": "Created", "status": "True"},
            {"type": "Failed", "status": "True", "reason": "FailedJobs", "message": "jobset failed"}]})
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 0, err
    [status] = reattach(run_dir, "status")
    assert status["state"] == "failed" and status["exit_code"] == 3
    assert status["reason"] == "FailedJobs: jobset failed"


def test_cancel_deletes_the_trainjob(tmp_path, fake_cluster):
    run_dir = submit(tmp_path, "trainjob")
    _, name, _ = the_object(fake_cluster)
    status, done = reattach(run_dir, "status", "cancel")
    assert status["state"] == "pending" and done == "cancelled"
    assert fake_cluster.deleted == [("trainjobs", "default", name, "Background")]
    [status] = reattach(run_dir, "status")
    assert status["state"] == "cancelled"


def test_the_follower_in_the_submitting_terminal_exits_with_the_jobs_code(tmp_path, fake_cluster):
    """launcher.wait=true: submit, then the shared follower watches the TrainJob to its end."""
    from aegis.launch import get_launcher
    from k8s_helpers import context_for

    def scenario(fake, plural, obj):
        name = obj["metadata"]["name"]

        def run():
            pods = trainjob_pods(fake, name, 2)
            fake.log(pods["node-0"], "epoch 1/1 val/acc=0.9")
            for pod in pods.values():
                fake.container_state(pod, {"terminated": {"exitCode": 0}}, phase="Succeeded")
            fake.set_status("trainjobs", name, {"conditions": [{"type": "Complete", "status": "True"}]})

        fake.run(run)

    fake_cluster.on_create = scenario
    overrides = ("launcher=trainjob", f"launcher.image={IMAGE}", "strategy=ddp", "launcher.poll_interval_s=0.1")
    cfg = compose_cfg(*overrides)
    assert get_launcher("trainjob").launch(cfg, context_for(cfg, overrides, tmp_path / "run")) == 0


def test_no_trainer_api_says_what_to_install(tmp_path, fake_cluster):
    fake_cluster.crd_installed = False
    overrides = ("launcher=trainjob", f"launcher.image={IMAGE}", "launcher.wait=false")
    cfg = compose_cfg(*overrides)
    from aegis.launch import get_launcher
    from aegis.k8s.client import ClusterError
    from k8s_helpers import context_for

    with pytest.raises(ClusterError, match="has no TrainJob API .* install Kubeflow Trainer v2"):
        get_launcher("trainjob").launch(cfg, context_for(cfg, overrides, tmp_path / "run"))


@pytest.mark.parametrize("conditions, state", [
    ([{"type": "Suspended", "status": "True", "reason": "Suspended"}], "queued"),
    ([{"type": "Created", "status": "True"}], "pending"),
    ([{"type": "Created", "status": "True"}, {"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}],
     "failed"),
    ([{"type": "Suspended", "status": "False"}, {"type": "Complete", "status": "True"}], "succeeded"),
])
def test_conditions_decide_the_state(conditions, state):
    obj = {"metadata": {"name": "j", "namespace": "default"}, "status": {"conditions": conditions}}
    assert job_status(TRAINJOB, obj, []).state.value == state
