"""launcher=rayjob: the rendered RayJob against the upstream KubeRay v1.7.0 CRD (strict on unknown
fields) and KubeRay's own rules, the entrypoint through KubeRay's two shells, the sweeper's
hand-off in ``python train.py`` (dry run: one RayJob on stdout, nothing else), and its life
against the fake API server (submit, status from jobDeploymentStatus/jobStatus and its pods,
the submitter's and the head's logs, Kueue's suspend, cancel) from a process that knows only the
run dir."""

from __future__ import annotations

import copy
import json
import shlex
import subprocess
import sys

import jsonschema
import pytest
import yaml

from aegis.errors import ConfigError
from aegis.k8s.status import job_status
from aegis.launch.base import RunContext
from aegis.launch.rayjob.kind import RAYJOB
from aegis.launch.rayjob.validate import rayjob_problems, templates, validate_rayjob
from helpers import crd_schema as upstream_crd_schema
from helpers import tier_table
from k8s_helpers import IMAGE, ROOT, compose_cfg, run_train
from test_k8s_lifecycle import reattach, the_object
from test_k8s_trainjob import strict

CRD = ROOT.parent / "shared" / "schemas" / "ray.io_rayjobs.yaml"
LR = "model.lr=tag(log,interval(1e-4,1e-1))"
SEARCH = ("search=ray-tune", LR)


@pytest.fixture(scope="module")
def crd_schema():
    if not CRD.is_file():
        pytest.skip(f"the upstream RayJob CRD is not at {CRD} (../shared/schemas beside the checkout)")
    return strict(upstream_crd_schema(CRD.name, "v1"))


def crd_errors(schema, manifest):
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in jsonschema.Draft7Validator(schema).iter_errors(manifest)]


def search_cfg(*overrides: str):
    """The search config the sweeper holds: composed in multirun mode, as train.py -m would."""
    overrides = ("search=ray-tune", "launcher=rayjob", f"launcher.image={IMAGE}", *overrides)
    cfg = compose_cfg(*overrides)
    return cfg, overrides


def render(tmp_path, *overrides, space=()):
    """The RayJob of a search; ``space``: its search-space overrides (command-line text only:
    composing them needs the sweeper, as in train.py -m)."""
    from aegis.launch import get_launcher

    cfg, overrides = search_cfg(*overrides)
    ctx = RunContext(run_dir=tmp_path / "run", run_id=str(cfg.run_id), task_overrides=(*space, *overrides),
                     config_name="train", multirun=True)
    return get_launcher("rayjob").render(cfg, ctx)


def test_the_strict_schema_catches_an_unknown_field(tmp_path, crd_schema):
    manifest = render(tmp_path).manifest
    manifest["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replica"] = 2  # a misspelt field
    manifest["spec"]["shutdownAfterJobFinish"] = True
    errors = crd_errors(crd_schema, manifest)
    assert len(errors) == 2 and any("replica'" in e for e in errors) and any("shutdownAfterJobFinish'" in e for e in errors)


def test_rayjob_is_what_the_crd_accepts_and_runs_the_same_search_on_the_clusters_ray(tmp_path, crd_schema):
    plan = render(tmp_path, "launcher.workers=2", "launcher.queue=team-a", "launcher.priority_class=high",
                  "launcher.active_deadline_seconds=7200", "trainer.max_epochs=3")
    manifest = plan.manifest
    assert crd_errors(crd_schema, manifest) == [] and rayjob_problems(manifest) == []
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] == "RayJob"
    spec = manifest["spec"]
    assert spec["submissionMode"] == "K8sJobMode" and spec["shutdownAfterJobFinishes"] is True
    assert spec["ttlSecondsAfterFinished"] == 60 and spec["activeDeadlineSeconds"] == 7200
    assert "suspend" not in spec  # Kueue's to set, never Aegis's
    labels = manifest["metadata"]["labels"]
    assert labels["kueue.x-k8s.io/queue-name"] == "team-a" and labels["kueue.x-k8s.io/priority-class"] == "high"
    # The entrypoint: the local search, pinned, on the in-cluster Ray.
    argv = shlex.split(spec["entrypoint"])
    sweep_dir = f"/outputs/train/multiruns/{plan.run_id}"
    assert argv[:2] == ["python", "train.py"]
    assert {"search=ray-tune", "launcher=local", "trainer.max_epochs=3", f"run_id={plan.run_id}", "paths.root=/outputs",
            f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.address=auto"} <= set(argv)
    assert not any(a.startswith("launcher.") for a in argv)  # this machine's launcher keys stay here
    assert plan.pod_run_dir == sweep_dir and manifest["metadata"]["annotations"]["aegis.dev/run-dir"] == sweep_dir
    cluster = spec["rayClusterSpec"]
    [group] = cluster["workerGroupSpecs"]
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (2, 2, 2)
    pods = templates(manifest)
    assert set(pods) == {"head", "worker", "submitter"}
    for role in ("head", "worker"):
        [ray] = pods[role]["spec"]["containers"]
        assert ray["name"] == "ray" and ray["image"] == IMAGE
        assert "command" not in ray and "args" not in ray  # KubeRay writes ray start itself
        assert {m["mountPath"] for m in ray["volumeMounts"]} == {"/outputs", "/dev/shm"}
        vols = {v["name"]: v for v in pods[role]["spec"]["volumes"]}
        assert vols["outputs"]["persistentVolumeClaim"] == {"claimName": "aegis-outputs"}
        assert vols["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "512Mi"}
        assert pods[role]["spec"]["securityContext"]["runAsUser"] == 1000
        assert pods[role]["metadata"]["labels"]["aegis.dev/ray-role"] == role
        assert "kueue.x-k8s.io/queue-name" not in pods[role]["metadata"]["labels"]
        env = {e["name"]: e.get("value") for e in ray["env"]}
        assert env["AEGIS_OUTPUT_ROOT"] == "/outputs" and "OMP_NUM_THREADS" not in env  # Ray sets it per trial
    # Ray's object store fits the /dev/shm it is given (else Ray falls back to /tmp).
    assert cluster["headGroupSpec"]["rayStartParams"]["object-store-memory"] == str(int(512 * 2**20 * 0.8))
    assert group["rayStartParams"] == cluster["headGroupSpec"]["rayStartParams"]
    submitter = pods["submitter"]["spec"]
    assert submitter["restartPolicy"] == "Never" and "volumes" not in submitter
    assert submitter["containers"][0]["image"] == IMAGE and "command" not in submitter["containers"][0]


def test_group_resources_head_cpus_and_no_workers(tmp_path, crd_schema):
    plan = render(tmp_path, "launcher.workers=0", "launcher.resources.cpu=4", "launcher.head.resources.cpu=2",
                  "launcher.head.resources.memory=8Gi", "launcher.head.num_cpus=0", "launcher.shm_size=null",
                  "launcher.ttl_seconds_after_finished=null")
    spec = plan.manifest["spec"]
    assert crd_errors(crd_schema, plan.manifest) == []
    assert "workerGroupSpecs" not in spec["rayClusterSpec"]  # a head-only Ray cluster
    head = spec["rayClusterSpec"]["headGroupSpec"]
    assert head["rayStartParams"] == {"num-cpus": "0"}  # no /dev/shm: Ray sizes its store itself
    assert head["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"memory": "8Gi"}}
    assert "ttlSecondsAfterFinished" not in spec
    plan = render(tmp_path, "launcher.workers=3", "launcher.resources.cpu=4", "launcher.resources.memory=8Gi")
    [group] = plan.manifest["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert group["replicas"] == 3
    assert group["template"]["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "4", "memory": "8Gi"}


def _broken(manifest, change):
    manifest = copy.deepcopy(manifest)
    change(manifest)
    return manifest


@pytest.mark.parametrize("change, words", [
    (lambda m: m["metadata"].update(name="r" * 48), "at most 47"),
    (lambda m: m["spec"].update(shutdownAfterJobFinishes=False), "shutdownAfterJobFinishes must be true"),
    (lambda m: m["spec"].update(suspend=False), "suspend must not be rendered"),
    (lambda m: m["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].update(minReplicas=3), "minReplicas=3"),
    (lambda m: m["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0].update(
        args=["ray start"]), "leave its command to KubeRay"),
    (lambda m: m["spec"]["submitterPodTemplate"]["spec"].update(restartPolicy="Always"), "must be Never"),
])
def test_kuberay_rules_the_crd_schema_does_not_encode(tmp_path, crd_schema, change, words):
    manifest = _broken(render(tmp_path).manifest, change)
    assert crd_errors(crd_schema, manifest) == []
    with pytest.raises(ConfigError, match=words) as refused:
        validate_rayjob(manifest)
    assert "\n" not in str(refused.value)


def test_every_pod_template_is_schema_checked(tmp_path):
    manifest = _broken(render(tmp_path).manifest, lambda m: m["spec"]["submitterPodTemplate"]["spec"].update(
        tolerations=[{"key": "a", "tolerationSecs": 1}]))
    with pytest.raises(ConfigError, match="submitter pod template"):
        validate_rayjob(manifest)


# ------------------------------------------------------------ the entrypoint through KubeRay

# The submitter's command as KubeRay v1.7 builds it (common/job.go BuildJobSubmitCommand), with
# `ray job submit` standing in: Ray 2.60 joins its words with shlex.join on POSIX
# (ray/dashboard/modules/job/cli.py) and its job supervisor runs that with shell=True, where
# `python` prints the arguments it got.
SUBMIT = ("import shlex, subprocess, sys; cmd = shlex.join(sys.argv[1:]); "
          "subprocess.run(['/bin/sh', '-c', 'python() { for a; do echo \"$a\"; done; }; ' + cmd], check=True)")


def through_kuberay(entrypoint: str) -> list[str]:
    line = f"if true ; then {sys.executable} -c {shlex.quote(SUBMIT)} {entrypoint} ; fi"  # click eats the --
    out = subprocess.run(["/bin/bash", "-lc", "--", line], capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def test_the_search_gets_its_overrides_unchanged_through_kuberays_shell_and_ray_job_submit(tmp_path):
    from aegis.launch.rayjob.entrypoint import entrypoint

    words = ["python", "train.py", LR, "model.hidden_dims=choice([128],[256,128])", "model.dropout=interval(0,0.5)",
             "hydra.sweeper.params.x=a;b|c&d>e", "logger.tags.n=$HOME", "model.hidden_dims=[1, 2]",
             "logger.tags.q='it''s'", 'logger.tags.d="x"', "seed=7"]
    assert through_kuberay(entrypoint(words)) == words[1:]
    plan = render(tmp_path, space=("model.dropout=interval(0,0.5)", LR))
    got = through_kuberay(plan.manifest["spec"]["entrypoint"])
    assert got[:3] == ["train.py", "model.dropout=interval(0,0.5)", LR] and "hydra.sweeper.address=auto" in got


def test_the_ray_pods_stop_the_search_in_a_prestop_hook_within_their_grace_period(tmp_path):
    """KubeRay v1.7.0 deletes the RayCluster on suspension (rayjob_controller.go: "If users want
    to stop the Ray job by SIGTERM, users need to set the Pod's preStop hook by themselves") and
    when the RayJob is deleted (aegis cancel); its BuildPod (common/pod.go) keeps the template's
    container as it is but for command, args, env and absent probes, so the hook reaches the pod.
    The kubelet runs it before the container's SIGTERM, both within terminationGracePeriodSeconds."""
    from aegis.launch.rayjob.checks import MIN_GRACE_S
    from aegis.tune.prestop import driver_token

    plan = render(tmp_path, "launcher.workers=2", "run_id=pre1")
    spec = plan.manifest["spec"]
    sweep_dir = "/outputs/train/multiruns/pre1"
    groups = [spec["rayClusterSpec"]["headGroupSpec"], *spec["rayClusterSpec"]["workerGroupSpecs"]]
    for group in groups:
        pod = group["template"]["spec"]
        [ray] = pod["containers"]
        assert ray["lifecycle"] == {"preStop": {"exec": {"command": ["python", "-m", "aegis.tune.prestop", sweep_dir]}}}
        assert pod["terminationGracePeriodSeconds"] >= MIN_GRACE_S
        env = {e["name"]: e.get("value") for e in ray["env"]}
        assert env["AEGIS_TERMINATION_GRACE_S"] == str(pod["terminationGracePeriodSeconds"])  # the hook's budget
    assert "lifecycle" not in spec["submitterPodTemplate"]["spec"]["containers"][0]
    # The hook finds the driver by the override the entrypoint pins, word for word.
    assert driver_token(sweep_dir) in shlex.split(spec["entrypoint"])


# ------------------------------------------------------------ python train.py

def test_dry_run_prints_one_rayjob_and_nothing_else_without_importing_ray_or_torch(tmp_path, crd_schema):
    proc = run_train("-m", *SEARCH, "launcher=rayjob", f"launcher.image={IMAGE}", "launcher.workers=2",
                     "launcher.dry_run=true", "run_id=s1", "hydra.sweeper.resources.cpu=64",
                     "hydra.sweeper.num_samples=3", cwd=tmp_path,
                     env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    [manifest] = list(yaml.safe_load_all(proc.stdout))
    assert crd_errors(crd_schema, manifest) == []
    spec = manifest["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and spec["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] == 2
    assert spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    assert "train.py" in spec["entrypoint"] and "hydra.sweeper.address=auto" in spec["entrypoint"]
    # The sweeper's settings reach the search in the cluster (Hydra keeps them out of the task's overrides).
    assert {"hydra.sweeper.resources.cpu=64", "hydra.sweeper.num_samples=3"} <= set(shlex.split(spec["entrypoint"]))
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert not {"torch", "lightning", "ray"} & imported
    run_dir = tmp_path / "outputs" / "train" / "runs" / "s1"  # this machine's record of the search
    assert yaml.safe_load((run_dir / "rayjob.yaml").read_text()) == manifest
    assert not (tmp_path / "outputs" / "train" / "multiruns").exists()  # no search ran here


@pytest.mark.parametrize("args, message", tier_table([
    (["launcher.workers=-1"], "Error: launcher.workers=-1 is invalid: expected a number >= 0."),
    (["launcher.queue='Bad_Queue!'"], "Error: launcher.queue='Bad_Queue!' is not a valid LocalQueue name"),
    (["hydra.sweeper.address=auto"], "Error: hydra.sweeper.address='auto' is set, but launcher=rayjob runs"),
    (["launcher.backoff_limit=2"], "Error: launcher.backoff_limit=2 would retry the whole RayJob"),
    (["launcher.shm_size=64Mi"], "Error: launcher.shm_size='64Mi' is too small for Ray's object store"),
    (["launcher.job_name=" + "r" * 48], "is not a valid RayJob name: expected a DNS-1035 label of at most 47"),
    (["launcher.image=aegis"], "Error: launcher.image='aegis'"),
    # KubeRay v1.7.0 common/pod.go: Ray < 2.53 gets exec probes running wget, absent from the image.
    (["launcher.ray_version=2.52.0"], "Error: launcher.ray_version: Ray 2.52.0 is older than 2.53, for which KubeRay"),
    (["launcher.termination_grace_period_s=30"], "Error: launcher.termination_grace_period_s=30 is too short for a "
                                                 "RayJob: its Ray pods' preStop hook needs up to 45 s"),
], default=(0, 6)))
def test_bad_input_is_one_sentence_and_nothing_is_rendered(tmp_path, args, message):
    proc = run_train(*SEARCH, "launcher=rayjob", f"launcher.image={IMAGE}", "launcher.dry_run=true", *args,
                     cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "outputs").exists()


def test_rayjob_without_a_search_is_refused(tmp_path):
    proc = run_train("launcher=rayjob", f"launcher.image={IMAGE}", "launcher.dry_run=true", cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip() == (
        "Error: launcher=rayjob runs a search on a Ray cluster in Kubernetes, and no search is selected: add "
        "search=ray-tune (or search=<a file in conf/search/>) with a search space, e.g. "
        "model.lr='tag(log,interval(1e-4,1e-1))', or train one config with launcher=k8s-job.")


@pytest.mark.parametrize("extras, missing", [([], "tune and kuberay"), (["tune"], "kuberay"), (["kuberay", "s3"], "tune")])
def test_an_image_docker_build_recorded_without_ray_is_refused(no_build_record, extras, missing):
    from aegis.config.validation import validate

    build = {"id": "sha256:" + "1" * 64, "accelerator": "cpu", "revision": None, "dirty": False,
             "built_at": "2026-12-02T00:00:00Z", "digest": None}
    no_build_record.write_text(json.dumps({IMAGE: {**build, "extras": extras}}))
    with pytest.raises(ConfigError) as info:
        validate(search_cfg()[0])
    [sentence] = str(info.value).splitlines()
    assert sentence.startswith(f"launcher.image={IMAGE} was built without {missing} (docker/build.sh recorded extras: ")
    assert sentence.endswith("expected an image built with docker/build.sh --extras tune,kuberay.")
    # With Ray, or a record from before builds recorded their extras: nothing is known against it.
    for entry in ({**build, "extras": ["kuberay", "tune"]}, build):
        no_build_record.write_text(json.dumps({IMAGE: entry}))
        validate(search_cfg()[0])


# ------------------------------------------------------------ the lifecycle, against the fake API server

def ray_pods(fake, name, workers):
    """Pods as KubeRay and the Job controller make them from the templates (whose labels they keep):
    <cluster>-head-<r>, <cluster>-workers-worker-<r>, and the submitter Job's <name>-<r>."""
    base = {RAYJOB.job_label: name}
    cluster = f"{name}-x7k2p"
    pods = {"head": fake.add_pod(f"{cluster}-head-q8w2z", {**base, "aegis.dev/ray-role": "head",
                                                             "ray.io/node-type": "head", "ray.io/cluster": cluster},
                                 "ray")["metadata"]["name"]}
    for i in range(workers):
        pod = fake.add_pod(f"{cluster}-workers-worker-w{i}abc", {**base, "aegis.dev/ray-role": "worker",
                                                                 "ray.io/node-type": "worker"}, "ray")
        pods[f"worker-w{i}abc"] = pod["metadata"]["name"]
    pods["submitter"] = fake.add_pod(f"{name}-s9d8f", {**base, "aegis.dev/ray-role": "submitter",
                                                       "batch.kubernetes.io/job-name": name}, "ray")["metadata"]["name"]
    for pod in pods.values():
        fake.container_state(pod, {"running": {}}, phase="Running")
    fake.set_status("rayjobs", name, {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"})
    return pods


def submit_search(tmp_path, *overrides):
    """The search submitted by the sweeper's hand-off, without waiting; its local run dir."""
    from aegis.launch import get_launcher

    cfg, _ = search_cfg("launcher.wait=false", "run_id=s1", f"paths.root={tmp_path}", *overrides)
    assert get_launcher("rayjob").launch_search(cfg) == 0
    return tmp_path / "train" / "runs" / "s1"


def test_submit_status_logs_and_the_end_from_the_run_dir_alone(tmp_path, fake_cluster):
    run_dir = submit_search(tmp_path, "launcher.workers=2")
    plural, name, obj = the_object(fake_cluster)
    assert plural == "rayjobs" and ("POST", "/apis/ray.io/v1/namespaces/default/rayjobs") in fake_cluster.requests
    assert obj["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] == 2
    ref = json.loads((run_dir / "job.json").read_text())
    assert (ref["launcher"], ref["kind"], ref["name"], ref["run_id"]) == ("rayjob", "RayJob", name, "s1")
    [status] = reattach(run_dir, "status")
    assert status["state"] == "pending" and status["replicas"] == []
    pods = ray_pods(fake_cluster, name, 2)
    fake_cluster.log(pods["submitter"], "Trial status: 2 RUNNING", "trial 0 val/acc=0.91")
    fake_cluster.log(pods["head"], "Ray runtime started.")
    status, *progress = reattach(run_dir, "status", "logs")
    assert status["state"] == "running"
    assert [r["name"] for r in status["replicas"]] == ["submitter", "head", "worker-w0abc", "worker-w1abc"]
    assert progress == ["Trial status: 2 RUNNING", "trial 0 val/acc=0.91"]  # the search's progress
    assert reattach(run_dir, "logs:head") == ["Ray runtime started."]
    err = reattach(run_dir, "logs:worker-9", ok=False)
    assert f"RayJob default/{name} has no replica worker-9: its replicas are head, submitter, worker-w0abc" in err
    fake_cluster.set_status("rayjobs", name, {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"})
    [status] = reattach(run_dir, "status")
    assert status["state"] == "succeeded" and status["exit_code"] == 0


def test_a_failed_search_has_kuberays_reason_and_the_submitters_code(tmp_path, fake_cluster):
    run_dir = submit_search(tmp_path)
    _, name, _ = the_object(fake_cluster)
    pods = ray_pods(fake_cluster, name, 1)
    fake_cluster.container_state(pods["submitter"], {"terminated": {"exitCode": 1, "reason": "Error"}}, phase="Failed")
    fake_cluster.set_status("rayjobs", name, {"jobDeploymentStatus": "Failed", "jobStatus": "FAILED",
                                              "reason": "AppFailed", "message": "Job entrypoint command failed"})
    [status] = reattach(run_dir, "status")
    assert status["state"] == "failed" and status["exit_code"] == 1
    assert status["reason"] == "AppFailed: Job entrypoint command failed"


def test_queued_by_kueue_then_cancelled(tmp_path, fake_cluster):
    fake_cluster.kueue = True
    run_dir = submit_search(tmp_path, "launcher.queue=team-a")
    _, name, obj = the_object(fake_cluster)
    assert obj["spec"]["suspend"] is True  # Kueue's webhook, not Aegis
    [status] = reattach(run_dir, "status")
    assert status["state"] == "queued" and "team-a" in status["reason"]
    status, done = reattach(run_dir, "status", "cancel")
    assert done == "cancelled" and fake_cluster.deleted == [("rayjobs", "default", name, "Background")]
    [status] = reattach(run_dir, "status")
    assert status["state"] == "cancelled"


def test_the_follower_exits_with_the_searchs_outcome(tmp_path, fake_cluster):
    from aegis.launch import get_launcher

    def scenario(fake, plural, obj):
        name = obj["metadata"]["name"]

        def run():
            pods = ray_pods(fake, name, 1)
            fake.log(pods["submitter"], "Best trial 3: val/acc=0.9700")
            fake.container_state(pods["submitter"], {"terminated": {"exitCode": 0}}, phase="Succeeded")
            fake.set_status("rayjobs", name, {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"})

        fake.run(run)

    fake_cluster.on_create = scenario
    cfg, _ = search_cfg("launcher.poll_interval_s=0.1", "run_id=s2", f"paths.root={tmp_path}")
    assert get_launcher("rayjob").launch_search(cfg) == 0


@pytest.mark.parametrize("status, state", [
    ({}, "pending"),
    ({"jobDeploymentStatus": "Initializing", "jobStatus": "NEW"}, "pending"),
    ({"jobDeploymentStatus": "Running", "jobStatus": "PENDING"}, "running"),
    ({"jobDeploymentStatus": "Suspended"}, "queued"),
    ({"jobDeploymentStatus": "Suspended", "jobStatus": "NEW", "suspend": False}, "pending"),  # just admitted
    ({"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}, "succeeded"),
    ({"jobDeploymentStatus": "Complete", "jobStatus": "STOPPED"}, "failed"),
    ({"jobDeploymentStatus": "Failed", "jobStatus": "RUNNING", "reason": "DeadlineExceeded"}, "failed"),
    ({"jobDeploymentStatus": "ValidationFailed", "reason": "ValidationFailed"}, "failed"),
])
def test_kuberays_statuses_decide_the_state(status, state):
    status = dict(status)
    spec = {"suspend": status.pop("suspend")} if "suspend" in status else {}
    obj = {"metadata": {"name": "j", "namespace": "default"}, "spec": spec, "status": status}
    assert job_status(RAYJOB, obj, []).state.value == state


def test_aegis_status_and_logs_find_the_search_by_its_run_id(tmp_path, fake_cluster, capsys):
    from aegis.commands import main

    submit_search(tmp_path, "launcher.workers=1")
    _, name, _ = the_object(fake_cluster)
    pods = ray_pods(fake_cluster, name, 1)
    fake_cluster.log(pods["submitter"], "Trial status: 1 RUNNING")
    fake_cluster.log(pods["head"], "Ray runtime started.")
    capsys.readouterr()
    assert main(["--root", str(tmp_path), "status", "s1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "running" and any("submitter running" in line for line in out), out
    assert main(["--root", str(tmp_path), "logs", "s1"]) == 0
    assert capsys.readouterr().out.splitlines() == ["Trial status: 1 RUNNING"]
    assert main(["--root", str(tmp_path), "logs", "s1", "--replica", "head"]) == 0
    assert capsys.readouterr().out.splitlines() == ["Ray runtime started."]
