"""A job's life after ``launcher.wait=false``: status, logs and cancel from another process.

Jobs are submitted over real HTTP to the fake API server (tests/k8s/fake_k8s.py); every
later question is asked by another Python process that knows only the run dir and reads
``job.json`` from it, as ``aegis status/logs/cancel RUN`` in another terminal would (one
answering process per test process, which never submits: ``reattach``; following a stream
starts a fresh one).
The test drives the job's life on the fake server in between.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import time

import pytest

from aegis.launch import get_launcher
from k8s_helpers import IMAGE, ROOT, compose_cfg, context_for

# Runs in another process: reattach from job.json alone, answer each op as one JSON line.
REATTACH = r"""
import json, sys
from aegis.launch import get_launcher
from aegis.core.lifecycle import JobRef


def answer(run_dir, ops):
    ref = JobRef.read(run_dir)
    launcher = get_launcher(ref.launcher)
    for op in ops:
        verb, _, arg = op.partition(":")
        if verb == "status":
            print(json.dumps(launcher.status(ref).as_dict()), flush=True)
        elif verb in ("logs", "follow"):
            for line in launcher.logs(ref, replica=arg or None, follow=verb == "follow"):
                print(json.dumps(line), flush=True)
        elif verb == "cancel":
            launcher.cancel(ref)
            print(json.dumps("cancelled"), flush=True)
    assert not {"torch", "lightning"} & set(sys.modules), "reattaching imported torch"


if sys.argv[1:] != ["--serve"]:
    answer(sys.argv[1], sys.argv[2:])
else:  # one question per stdin line, in the asking test's environment and folder
    import contextlib, io, os, traceback

    for request in sys.stdin:
        asked = json.loads(request)
        os.environ.clear()
        os.environ.update(asked["env"])
        os.chdir(asked["cwd"])
        out, err, code = io.StringIO(), io.StringIO(), 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                answer(asked["run_dir"], asked["ops"])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                traceback.print_exc()
                code = 1
        print(json.dumps({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}), flush=True)
"""

BASE = "training.kubeflow.org/job-name"


def reattach_args(run_dir, *ops):
    return [sys.executable, "-c", REATTACH, str(run_dir), *ops]


_ANSWERING: list[subprocess.Popen] = []


def _answering_process() -> subprocess.Popen:
    """One Python process per test process that answers every ``reattach``: it never submitted
    anything and knows each job only from its run dir, as ``aegis status`` in another terminal;
    it saves a fresh interpreter's ~0.8 s of imports per question (its first question is a
    fresh interpreter's). Each question brings the asking test's environment (its fake
    cluster's kubeconfig) and folder."""
    if not _ANSWERING or _ANSWERING[0].poll() is not None:
        proc = subprocess.Popen([sys.executable, "-c", REATTACH, "--serve"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
        atexit.register(proc.kill)
        _ANSWERING[:] = [proc]
    return _ANSWERING[0]


def reattach(run_dir, *ops, ok=True):
    proc = _answering_process()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc.stdin.write(json.dumps({"run_dir": str(run_dir), "ops": ops, "env": env, "cwd": os.getcwd()}) + "\n")
    proc.stdin.flush()
    if not select.select([proc.stdout], [], [], 60)[0]:
        proc.kill()
        raise AssertionError(f"reattaching to {run_dir} for {ops} did not answer in 60 s")
    result = json.loads(proc.stdout.readline())
    if ok:
        assert result["code"] == 0, result["stderr"][-3000:]
        return [json.loads(line) for line in result["stdout"].splitlines()]
    assert result["code"] != 0
    return result["stderr"]


def submit(tmp_path, launcher, *overrides):
    """Submit with wait=false in this process; the run dir that now holds job.json."""
    overrides = (f"launcher={launcher}", f"launcher.image={IMAGE}", "launcher.wait=false", *overrides)
    cfg = compose_cfg(*overrides)
    run_dir = tmp_path / "run"
    assert get_launcher(launcher).launch(cfg, context_for(cfg, overrides, run_dir)) == 0
    return run_dir


def the_object(fake):
    [((plural, ns, name), obj)] = fake.objects.items()
    return plural, name, obj


def test_job_ref_is_written_at_submit(tmp_path, fake_cluster):
    run_dir = submit(tmp_path, "k8s-job")
    plural, name, obj = the_object(fake_cluster)
    ref = json.loads((run_dir / "job.json").read_text())
    assert ref["launcher"] == "k8s-job" and ref["kind"] == "Job" and ref["name"] == name
    assert ref["namespace"] == "default" and ref["uid"] == obj["metadata"]["uid"] and ref["context"] == "fake"
    assert ref["run_dir"] == str(run_dir) and ref["run_id"] == obj["metadata"]["annotations"]["aegis.dev/run-id"]


def test_no_job_ref_on_dry_runs(tmp_path, fake_cluster):
    run_dir = submit(tmp_path, "k8s-job", "launcher.server_dry_run=true")
    assert not (run_dir / "job.json").exists()


def test_job_status_and_logs_from_another_process(tmp_path, fake_cluster):
    run_dir = submit(tmp_path, "k8s-job")
    _, name, _ = the_object(fake_cluster)
    [status] = reattach(run_dir, "status")
    assert status["state"] == "pending" and status["replicas"] == []

    pod = fake_cluster.add_pod(f"{name}-x1", {"job-name": name}, "train")["metadata"]["name"]
    fake_cluster.pods[("default", pod)]["spec"]["nodeName"] = "node-a"
    fake_cluster.container_state(pod, {"running": {}}, phase="Running")
    fake_cluster.set_status("jobs", name, {"active": 1})
    fake_cluster.log(pod, "epoch 1 val/acc=0.50", "epoch 2 val/acc=0.90")
    status, *lines = reattach(run_dir, "status", "logs")
    assert status["state"] == "running" and status["exit_code"] is None
    assert status["replicas"] == [{"name": pod, "state": "running", "exit_code": None, "reason": None,
                                   "node": "node-a"}]
    assert lines == ["epoch 1 val/acc=0.50", "epoch 2 val/acc=0.90"]

    fake_cluster.container_state(pod, {"terminated": {"exitCode": 0, "reason": "Completed"}}, phase="Succeeded")
    fake_cluster.set_status("jobs", name, {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
    [status] = reattach(run_dir, "status")
    assert status["state"] == "succeeded" and status["exit_code"] == 0
    assert status["replicas"][0]["state"] == "succeeded" and status["replicas"][0]["exit_code"] == 0


def test_failed_job_has_the_exit_code_and_the_reason(tmp_path, fake_cluster):
    run_dir = submit(tmp_path, "k8s-job")
    _, name, _ = the_object(fake_cluster)
    pod = fake_cluster.add_pod(f"{name}-x1", {"job-name": name}, "train")["metadata"]["name"]
    fake_cluster.container_state(pod, {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}, phase="Failed")
    fake_cluster.set_status("jobs", name, {"failed": 1, "conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
         "message": "Job has reached the specified backoff limit"}]})
    [status] = reattach(run_dir, "status")
    assert status["state"] == "failed" and status["exit_code"] == 137
    assert status["reason"].startswith("OOMKilled; BackoffLimitExceeded: Job has reached")
    assert status["replicas"] == [{"name": pod, "state": "failed", "exit_code": 137, "reason": "OOMKilled",
                                   "node": None}]


def pytorchjob_pods(fake, name, workers):
    """Pods as the Training Operator labels them: master-0, worker-0, worker-1, ..."""
    pods = {}
    for rtype, index in [("master", 0), *(("worker", i) for i in range(workers))]:
        labels = {BASE: name, "training.kubeflow.org/replica-type": rtype,
                  "training.kubeflow.org/replica-index": str(index)}
        if rtype == "master":
            labels["training.kubeflow.org/job-role"] = "master"
        pod = fake.add_pod(f"{name}-{rtype}-{index}", labels, "pytorch")["metadata"]["name"]
        fake.container_state(pod, {"running": {}}, phase="Running")
        pods[f"{rtype}-{index}"] = pod
    fake.set_status("pytorchjobs", name, {"conditions": [
        {"type": "Created", "status": "True"}, {"type": "Running", "status": "True", "reason": "PyTorchJobRunning"}]})
    return pods


def test_pytorchjob_status_and_every_replicas_logs(tmp_path, fake_cluster):
    run_dir = submit(tmp_path, "pytorchjob", "strategy=ddp", "launcher.nodes=3")
    plural, name, obj = the_object(fake_cluster)
    assert plural == "pytorchjobs" and obj["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 2
    pods = pytorchjob_pods(fake_cluster, name, workers=2)
    fake_cluster.log(pods["master-0"], "rank 0: epoch 1")
    fake_cluster.log(pods["worker-1"], "rank 2: joined", "rank 2: epoch 1")

    status, *master = reattach(run_dir, "status", "logs")
    assert status["state"] == "running"
    assert [(r["name"], r["state"]) for r in status["replicas"]] == [
        ("master-0", "running"), ("worker-0", "running"), ("worker-1", "running")]
    assert master == ["rank 0: epoch 1"]
    assert reattach(run_dir, "logs:worker-1") == ["rank 2: joined", "rank 2: epoch 1"]
    assert reattach(run_dir, f"logs:{pods['worker-1']}") == ["rank 2: joined", "rank 2: epoch 1"]
    assert reattach(run_dir, "logs:worker-0") == []
    err = reattach(run_dir, "logs:worker-7", ok=False)
    assert f"PyTorchJob default/{name} has no replica worker-7: its replicas are master-0, worker-0, worker-1." in err


def test_following_a_worker_streams_through_a_restart_until_the_job_ends(tmp_path, fake_cluster):
    run_dir = submit(tmp_path, "pytorchjob", "strategy=ddp", "launcher.nodes=3")
    _, name, _ = the_object(fake_cluster)
    pods = pytorchjob_pods(fake_cluster, name, workers=2)
    fake_cluster.log(pods["worker-1"], "rank 2: epoch 1")
    proc = subprocess.Popen(reattach_args(run_dir, "follow:worker-1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    try:
        assert json.loads(proc.stdout.readline()) == "rank 2: epoch 1"
        fake_cluster.log(pods["worker-1"], "rank 2: epoch 2")
        assert json.loads(proc.stdout.readline()) == "rank 2: epoch 2"
        last = {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}
        fake_cluster.container_state(pods["worker-1"], last)  # its stream ends; the job does not
        time.sleep(1.5)
        assert proc.poll() is None  # waiting for the next container start
        fake_cluster.container_state(pods["worker-1"], {"running": {}}, restart=True, last_state=last)
        fake_cluster.log(pods["worker-1"], "rank 2: resumed from last.ckpt")
        assert json.loads(proc.stdout.readline()) == "rank 2: resumed from last.ckpt"  # through the restart
        [status] = reattach(run_dir, "status")
        assert status["state"] == "running"
        assert status["replicas"][2] == {"name": "worker-1", "state": "running", "exit_code": None,
                                         "reason": "restarted 1x, last: OOMKilled", "node": None}
        assert proc.poll() is None  # still following: the job runs
        for pod in pods.values():
            fake_cluster.container_state(pod, {"terminated": {"exitCode": 0}}, phase="Succeeded")
        fake_cluster.set_status("pytorchjobs", name, {"conditions": [
            {"type": "Created", "status": "True"}, {"type": "Succeeded", "status": "True"}]})
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 0, err
    assert out == ""
    [status] = reattach(run_dir, "status")
    assert status["state"] == "succeeded" and status["exit_code"] == 0


@pytest.mark.parametrize("launcher, plural", [("k8s-job", "jobs"), ("pytorchjob", "pytorchjobs")])
def test_cancel_deletes_the_object_and_status_says_cancelled(tmp_path, fake_cluster, launcher, plural):
    run_dir = submit(tmp_path, launcher)
    _, name, _ = the_object(fake_cluster)
    status, done = reattach(run_dir, "status", "cancel")
    assert status["state"] == "pending" and done == "cancelled"
    assert fake_cluster.objects == {}
    assert fake_cluster.deleted == [(plural, "default", name, "Background")]
    assert (run_dir / "cancel.requested").is_file()
    [status] = reattach(run_dir, "status")
    assert status["state"] == "cancelled" and "deleted on request" in status["reason"]


def test_a_job_deleted_by_someone_else_is_unknown(tmp_path, fake_cluster):
    run_dir = submit(tmp_path, "k8s-job")
    _, name, _ = the_object(fake_cluster)
    fake_cluster.objects.clear()  # kubectl delete, or the TTL controller
    [status] = reattach(run_dir, "status")
    assert status["state"] == "unknown" and f"Job default/{name} no longer exists" in status["reason"]
    err = reattach(run_dir, "cancel", ok=False)
    assert "has nothing to cancel" in err and not (run_dir / "cancel.requested").exists()


def test_cancel_deletes_only_the_object_with_the_recorded_uid(tmp_path, fake_cluster):
    run_dir = submit(tmp_path, "k8s-job")
    _, name, obj = the_object(fake_cluster)
    ref = json.loads((run_dir / "job.json").read_text())
    (run_dir / "job.json").write_text(json.dumps({**ref, "uid": None}))  # an older or hand-made job.json
    err = reattach(run_dir, "cancel", ok=False)
    assert f"names Job default/{name} without its uid" in err and "deletes nothing" in err
    assert fake_cluster.deleted == [] and fake_cluster.delete_bodies == [] and fake_cluster.objects
    assert not (run_dir / "cancel.requested").exists()

    (run_dir / "job.json").write_text(json.dumps(ref))
    assert reattach(run_dir, "cancel") == ["cancelled"]
    [body] = fake_cluster.delete_bodies
    assert body["preconditions"] == {"uid": obj["metadata"]["uid"]} and body["propagationPolicy"] == "Background"


def test_a_finished_job_is_not_cancelled(tmp_path, fake_cluster):
    run_dir = submit(tmp_path, "k8s-job")
    _, name, _ = the_object(fake_cluster)
    fake_cluster.set_status("jobs", name, {"conditions": [{"type": "Complete", "status": "True"}]})
    err = reattach(run_dir, "cancel", ok=False)
    assert "is not running (it is succeeded): there is nothing to cancel." in err
    assert fake_cluster.deleted == [] and not (run_dir / "cancel.requested").exists()


# ------------------------------------------------------------ the reading itself, no cluster

def _pod(name, labels, state, phase="Pending", **status):
    return {"metadata": {"name": name, "labels": labels, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": phase, "containerStatuses": [{"name": "pytorch", "restartCount": 0, "state": state}],
                       **status}}


@pytest.mark.parametrize("conditions, pod_state, state, reason", [
    ([{"type": "Suspended", "status": "True", "reason": "Queued"}], None, "queued",
     "suspended (no kueue.x-k8s.io/queue-name label)"),  # queued in a LocalQueue: test_k8s_kueue.py
    ([{"type": "Created", "status": "True"}], {"waiting": {"reason": "ImagePullBackOff"}}, "pending",
     "master-0: ImagePullBackOff"),
    ([{"type": "Created", "status": "True"}], {"waiting": {"reason": "ContainerCreating"}}, "pending", None),
    ([{"type": "Running", "status": "True"}, {"type": "Restarting", "status": "True", "reason": "Restarting"}],
     {"waiting": {"reason": "ContainerCreating"}}, "running", "Restarting"),
    ([{"type": "Running", "status": "False"}, {"type": "Failed", "status": "True", "reason": "PyTorchJobFailed"}],
     {"terminated": {"exitCode": 2, "reason": "Error"}}, "failed", "PyTorchJobFailed"),
])
def test_conditions_and_pods_decide_the_state(conditions, pod_state, state, reason):
    from aegis.launch.pytorchjob.kind import PYTORCHJOB
    from aegis.k8s.status import job_status

    obj = {"metadata": {"name": "j", "namespace": "default"}, "status": {"conditions": conditions}}
    master = {BASE: "j", "training.kubeflow.org/job-role": "master"}
    pods = [_pod("j-master-0", master, pod_state)] if pod_state else []
    status = job_status(PYTORCHJOB, obj, pods)
    assert (status.state.value, status.reason) == (state, reason)
    assert status.exit_code == (2 if state == "failed" else None)


def test_an_unschedulable_pod_says_why():
    from aegis.launch.k8s_job.kind import JOB
    from aegis.k8s.status import job_status

    pod = {"metadata": {"name": "j-abc", "labels": {"job-name": "j"}}, "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]}}
    status = job_status(JOB, {"metadata": {"name": "j"}, "status": {"active": 1}}, [pod])
    assert status.state.value == "pending"
    assert status.reason == "j-abc: Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu."


@pytest.mark.parametrize("module", ["k8s/client", "k8s/follow", "k8s/logs", "k8s/status", "launch/kubernetes",
                                    "k8s/triage"])
def test_shared_kubernetes_code_names_no_kind(module):
    """Everything kind-specific lives in aegis.k8s.kinds: adding a kind touches no shared module."""
    source = (ROOT / "src" / "aegis" / f"{module}.py").read_text()
    for word in ('"Job"', '"PyTorchJob"', "kubeflow.org", "pytorchjobs", "job-name", "job-role"):
        assert word not in source, f"aegis/{module}.py names {word}"
