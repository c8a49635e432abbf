"""Submit and follow over real HTTP against the fake API server (tests/k8s/fake_k8s.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from aegis.errors import AegisError
from aegis.launch import get_launcher
from helpers import sigint_as_at_a_terminal
from k8s_helpers import IMAGE, ROOT, compose_cfg, context_for

MASTER = {"training.kubeflow.org/job-role": "master"}


def launch(tmp_path, launcher, *overrides):
    overrides = (f"launcher={launcher}", f"launcher.image={IMAGE}", "launcher.poll_interval_s=0.2", *overrides)
    cfg = compose_cfg(*overrides)
    ctx = context_for(cfg, overrides, tmp_path / "run")
    return get_launcher(launcher).launch(cfg, ctx)


def job_pod(fake, job, suffix="a"):
    return fake.add_pod(f"{job}-{suffix}", {"job-name": job}, "train")["metadata"]["name"]


def job_lifecycle(exit_code=0, *, pending_event=True, restart=False, oom=False, image_pull=False):
    """A Job's life as the real controllers would drive it."""

    def on_create(fake, plural, obj):
        name = obj["metadata"]["name"]

        def life():
            time.sleep(0.2)
            pod = job_pod(fake, name)
            fake.set_status("jobs", name, {"active": 1})
            if pending_event:
                fake.event("Pod", pod, "FailedScheduling", "0/1 nodes are available: 1 Insufficient cpu.")
                time.sleep(0.5)
            if image_pull:
                fake.container_state(pod, {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}})
                time.sleep(0.6)
                fake.set_status("jobs", name, {"failed": 1, "conditions": [
                    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]})
                return
            fake.container_state(pod, {"running": {}}, phase="Running")
            fake.log(pod, "epoch 1 val/acc=0.50")
            time.sleep(0.3)
            if restart or oom:
                fake.log(pod, "killed mid-epoch")
                time.sleep(0.3)
                last = {"terminated": {"exitCode": 137, "reason": "OOMKilled" if oom else "Error"}}
                fake.container_state(pod, {"running": {}}, restart=True, last_state=last)
                fake.log(pod, "resumed from last.ckpt")
                time.sleep(0.3)
            fake.log(pod, "epoch 2 val/acc=0.90")
            time.sleep(0.2)
            fake.container_state(pod, {"terminated": {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error"}},
                                 phase="Succeeded" if exit_code == 0 else "Failed")
            time.sleep(0.2)
            done = {"type": "Complete", "status": "True"} if exit_code == 0 else \
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}
            fake.set_status("jobs", name, {"conditions": [done]})

        fake.run(life)

    return on_create


def test_job_created_followed_to_success_with_logs_and_events(tmp_path, fake_cluster, capsys):
    fake_cluster.on_create = job_lifecycle(0)
    assert launch(tmp_path, "k8s-job") == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["epoch 1 val/acc=0.50", "epoch 2 val/acc=0.90"]
    assert "FailedScheduling pod/" in err and "Insufficient cpu" in err
    assert "Pending" in err and "Running" in err and "succeeded" in err, err
    [(plural, ns, name)] = fake_cluster.objects
    assert plural == "jobs" and ns == "default"
    assert (tmp_path / "run" / "job.yaml").is_file()


def test_job_failure_is_the_exit_code(tmp_path, fake_cluster, capsys):
    fake_cluster.on_create = job_lifecycle(3, pending_event=False)
    assert launch(tmp_path, "k8s-job") == 3
    assert "failed (exit code 3)" in capsys.readouterr().err


def test_logs_follow_a_restart_and_oom_is_surfaced(tmp_path, fake_cluster, capsys):
    fake_cluster.on_create = job_lifecycle(0, pending_event=False, oom=True)
    assert launch(tmp_path, "k8s-job") == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["epoch 1 val/acc=0.50", "killed mid-epoch", "resumed from last.ckpt",
                                "epoch 2 val/acc=0.90"]
    assert "OOMKilled" in err and "launcher.resources.memory" in err
    assert "restarted" in err


def test_image_pull_backoff_is_surfaced(tmp_path, fake_cluster, capsys):
    fake_cluster.on_create = job_lifecycle(pending_event=False, image_pull=True)
    assert launch(tmp_path, "k8s-job") == 1
    err = capsys.readouterr().err
    assert "ImagePullBackOff: Back-off pulling image" in err


def pytorchjob_lifecycle(fail=False):
    def on_create(fake, plural, obj):
        name = obj["metadata"]["name"]
        workers = obj["spec"]["pytorchReplicaSpecs"].get("Worker", {}).get("replicas", 0)

        def life():
            base = {"training.kubeflow.org/job-name": name}
            fake.set_status(plural, name, {"conditions": [{"type": "Created", "status": "True", "reason": "PyTorchJobCreated"}]})
            master = fake.add_pod(f"{name}-master-0", {**base, **MASTER}, "pytorch")["metadata"]["name"]
            for i in range(workers):
                fake.add_pod(f"{name}-worker-{i}", {**base, "training.kubeflow.org/job-role": "worker"}, "pytorch")
            time.sleep(0.3)
            fake.container_state(master, {"running": {}}, phase="Running")
            fake.set_status(plural, name, {"conditions": [
                {"type": "Created", "status": "True"}, {"type": "Running", "status": "True"}]})
            fake.log(master, "rank 0: epoch 1")
            fake.log(f"{name}-worker-0", "a worker line that must not be streamed") if workers else None
            time.sleep(0.3)
            fake.container_state(master, {"terminated": {"exitCode": 1 if fail else 0}},
                                 phase="Failed" if fail else "Succeeded")
            final = "Failed" if fail else "Succeeded"
            fake.set_status(plural, name, {"conditions": [
                {"type": "Created", "status": "True"}, {"type": "Running", "status": "False"},
                {"type": final, "status": "True", "reason": f"PyTorchJob{final}"}]})

        fake.run(life)

    return on_create


def test_pytorchjob_streams_the_master_through_created_running_succeeded(tmp_path, fake_cluster, capsys):
    fake_cluster.on_create = pytorchjob_lifecycle()
    assert launch(tmp_path, "pytorchjob", "launcher.nodes=2") == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["rank 0: epoch 1"]
    for phrase in ("Created", "Running", "Succeeded"):
        assert f"PyTorchJob default/" in err and phrase in err
    assert (tmp_path / "run" / "pytorchjob.yaml").is_file()


def test_pytorchjob_failure(tmp_path, fake_cluster, capsys):
    fake_cluster.on_create = pytorchjob_lifecycle(fail=True)
    assert launch(tmp_path, "pytorchjob") == 1


def test_wait_false_prints_the_run_id_and_returns(tmp_path, fake_cluster, capsys):
    assert launch(tmp_path, "k8s-job", "launcher.wait=false") == 0
    out, err = capsys.readouterr()
    [obj] = fake_cluster.objects.values()
    run_id = out.strip()
    assert run_id and obj["metadata"]["annotations"]["aegis.dev/run-id"] == run_id
    assert f"python -m aegis status {run_id}" in err and f"python -m aegis logs {run_id} --follow" in err


def test_server_dry_run_creates_nothing(tmp_path, fake_cluster, capsys):
    assert launch(tmp_path, "pytorchjob", "launcher.server_dry_run=true") == 0
    assert fake_cluster.objects == {}
    assert any("dryRun=All" in path for method, path in fake_cluster.requests if method == "POST")
    assert "accepted" in capsys.readouterr().err


@pytest.mark.parametrize("setup, launcher, words", [
    (lambda f: setattr(f, "reject_token", True), "k8s-job", r"refused the credentials \(401 Unauthorized\)"),
    (lambda f: f.forbid.add("create"), "k8s-job", r"may not create Jobs in namespace default \(403 Forbidden"),
    (lambda f: f.namespaces.clear(), "k8s-job", "launcher.namespace=default does not exist"),
    (lambda f: setattr(f, "crd_installed", False), "pytorchjob", "has no PyTorchJob API.*Training Operator"),
])
def test_api_errors_are_one_sentence(tmp_path, fake_cluster, setup, launcher, words):
    setup(fake_cluster)
    with pytest.raises(AegisError, match=words) as info:
        launch(tmp_path, launcher)
    assert "\n" not in str(info.value)


def test_name_already_exists(tmp_path, fake_cluster):
    assert launch(tmp_path, "k8s-job", "launcher.job_name=exp-1", "launcher.wait=false") == 0
    with pytest.raises(AegisError, match="a Job named exp-1 already exists in namespace default: set launcher.job_name"):
        launch(tmp_path, "k8s-job", "launcher.job_name=exp-1", "launcher.wait=false")


def test_no_kube_context(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(AegisError, match="no Kubernetes context"):
        launch(tmp_path, "k8s-job")


def test_unknown_context(tmp_path, fake_cluster):
    with pytest.raises(AegisError, match="launcher.context=nope cannot be used"):
        launch(tmp_path, "k8s-job", "launcher.context=nope")


def endless_job(fake, plural, obj):
    name = obj["metadata"]["name"]

    def life():
        pod = job_pod(fake, name)
        fake.container_state(pod, {"running": {}}, phase="Running")
        fake.log(pod, "training started")

    fake.run(life)


@pytest.mark.parametrize("cancel", [False, True])
def test_ctrl_c_stops_following_and_optionally_cancels(tmp_path, fake_cluster, cancel):
    fake_cluster.on_create = endless_job
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), "launcher=k8s-job", f"launcher.image={IMAGE}",
         f"launcher.cancel_on_interrupt={str(cancel).lower()}", "launcher.poll_interval_s=0.2"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "AEGIS_OUTPUT_ROOT": str(tmp_path / "out")},
        preexec_fn=sigint_as_at_a_terminal,
    )
    assert proc.stdout.readline().strip() == "training started"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    if cancel:
        assert "deleted Job default/" in err
        [(plural, ns, name, propagation)] = fake_cluster.deleted
        assert propagation == "Background" and fake_cluster.objects == {}
        [run_dir] = (tmp_path / "out").rglob("cancel.requested")  # so status says cancelled
    else:
        assert "keeps running. Follow again: python -m aegis logs " in err and "kubectl logs -f" in err
        assert fake_cluster.deleted == [] and len(fake_cluster.objects) == 1


def test_a_retried_job_is_followed_into_its_next_pod(tmp_path, fake_cluster, capsys):
    def on_create(fake, plural, obj):
        name = obj["metadata"]["name"]

        def life():
            first = job_pod(fake, name, "a")
            fake.container_state(first, {"running": {}}, phase="Running")
            fake.log(first, "attempt 1")
            time.sleep(0.3)
            fake.container_state(first, {"terminated": {"exitCode": 143, "reason": "Error"}}, phase="Failed")
            time.sleep(0.1)
            fake.pods[("default", first)]["metadata"]["creationTimestamp"] = "2000-01-01T00:00:00Z"
            second = job_pod(fake, name, "b")
            fake.container_state(second, {"running": {}}, phase="Running")
            fake.log(second, "attempt 2: resumed from last.ckpt")
            time.sleep(0.3)
            fake.container_state(second, {"terminated": {"exitCode": 0}}, phase="Succeeded")
            fake.set_status("jobs", name, {"conditions": [{"type": "Complete", "status": "True"}]})

        fake.run(life)

    fake_cluster.on_create = on_create
    assert launch(tmp_path, "k8s-job") == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["attempt 1", "attempt 2: resumed from last.ckpt"]
    assert "now following pod" in err


def test_unreachable_api_server(tmp_path, monkeypatch):
    from fake_k8s import FakeCluster

    fake = FakeCluster().start()
    kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
    fake.stop()  # the port is closed now
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    with pytest.raises(AegisError, match="cannot reach the API server http://127.0.0.1:"):
        launch(tmp_path, "k8s-job")


# -- the claims the pods mount, checked before anything is created ---------------------------------

def _posted(fake):
    return [path for method, path in fake.requests if method == "POST"]


def test_a_missing_claim_is_refused_before_anything_is_created(tmp_path, fake_cluster):
    del fake_cluster.claims[("default", "aegis-outputs")]
    del fake_cluster.claims[("default", "aegis-dataset-cache")]
    with pytest.raises(AegisError) as info:
        launch(tmp_path, "k8s-job", "data.uses_dataset_cache=true")
    assert str(info.value).splitlines() == [
        "launcher.outputs.claim=aegis-outputs does not exist in namespace default of kube context fake: create it "
        "(kubectl apply -n default -f k8s/pvc-dataset-cache.yaml creates the default claims, ReadWriteMany) or set "
        "launcher.outputs.claim to an existing claim.",
        "launcher.dataset_cache.claim=aegis-dataset-cache does not exist in namespace default of kube context fake: "
        "create it (kubectl apply -n default -f k8s/pvc-dataset-cache.yaml creates the default claims, "
        "ReadWriteMany) or set launcher.dataset_cache.claim to an existing claim."]
    assert _posted(fake_cluster) == [] and fake_cluster.objects == {}
    assert any("/persistentvolumeclaims/aegis-outputs" in path for _, path in fake_cluster.requests)


def test_the_dataset_cache_claim_is_checked_only_when_mounted(tmp_path, fake_cluster):
    del fake_cluster.claims[("default", "aegis-dataset-cache")]
    assert launch(tmp_path, "k8s-job", "launcher.wait=false") == 0  # digits mounts no cache
    assert not any("aegis-dataset-cache" in path for _, path in fake_cluster.requests)
    assert len(fake_cluster.objects) == 1


@pytest.mark.parametrize("modes", [["ReadWriteOnce"], ["ReadWriteOncePod"], ["ReadOnlyMany"]])
def test_a_claim_one_node_can_mount_is_refused_for_pods_on_several_nodes(tmp_path, fake_cluster, modes):
    fake_cluster.claims[("default", "aegis-outputs")] = modes
    with pytest.raises(AegisError) as info:
        launch(tmp_path, "pytorchjob", "launcher.nodes=2")
    [sentence] = str(info.value).splitlines()
    assert sentence.startswith(f"launcher.outputs.claim=aegis-outputs allows {modes[0]}, but the pods of this job "
                               "can run on different nodes")
    assert "expected a ReadWriteMany claim" in sentence
    assert _posted(fake_cluster) == []


@pytest.mark.parametrize("forbidden", [False, True])
def test_a_one_node_cluster_shares_a_read_write_once_claim(tmp_path, fake_cluster, forbidden):
    """kind, minikube: every pod lands on the one node. A context that may not list nodes
    cannot know that, so the claim is refused as on any cluster; ReadWriteOncePod always is."""
    fake_cluster.nodes = ["kind-control-plane"]
    fake_cluster.claims[("default", "aegis-outputs")] = ["ReadWriteOnce"]
    if forbidden:
        fake_cluster.forbid.add("list nodes")
        with pytest.raises(AegisError, match="launcher.outputs.claim=aegis-outputs allows ReadWriteOnce"):
            launch(tmp_path, "pytorchjob", "launcher.nodes=2", "launcher.wait=false")
        return
    assert launch(tmp_path, "pytorchjob", "launcher.nodes=2", "launcher.wait=false") == 0
    fake_cluster.claims[("default", "aegis-outputs")] = ["ReadWriteOncePod"]
    with pytest.raises(AegisError, match="allows ReadWriteOncePod"):
        launch(tmp_path, "pytorchjob", "launcher.nodes=2", "launcher.wait=false")


def test_access_modes_that_fit_the_job_are_accepted(tmp_path, fake_cluster):
    fake_cluster.claims[("default", "aegis-outputs")] = ["ReadWriteOnce"]
    fake_cluster.claims[("default", "aegis-dataset-cache")] = ["ReadOnlyMany"]
    # one pod, or one node: ReadWriteOnce is enough
    assert launch(tmp_path, "k8s-job", "launcher.wait=false", "launcher.job_name=one") == 0
    assert launch(tmp_path, "pytorchjob", "launcher.nodes=1", "launcher.wait=false", "launcher.job_name=one") == 0
    # several nodes: a read-only cache may be ReadOnlyMany, the outputs must be ReadWriteMany
    fake_cluster.claims[("default", "aegis-outputs")] = ["ReadWriteOnce", "ReadWriteMany"]
    assert launch(tmp_path, "pytorchjob", "launcher.nodes=3", "data.uses_dataset_cache=true",
                  "launcher.dataset_cache.read_only=true", "launcher.wait=false", "launcher.job_name=three") == 0
    with pytest.raises(AegisError, match="launcher.dataset_cache.claim=aegis-dataset-cache allows ReadOnlyMany"):
        launch(tmp_path, "pytorchjob", "launcher.nodes=3", "data.uses_dataset_cache=true", "launcher.wait=false")


def test_claims_that_may_not_be_read_are_a_warning(tmp_path, fake_cluster, capsys):
    fake_cluster.forbid.add("get persistentvolumeclaims")
    assert launch(tmp_path, "pytorchjob", "launcher.wait=false") == 0
    err = capsys.readouterr().err
    assert ("[k8s] warning: kube context fake may not read PersistentVolumeClaims in namespace default (403), so "
            "launcher.outputs.claim=aegis-outputs was not checked before submitting") in err
    assert len(fake_cluster.objects) == 1


def test_claims_are_checked_by_a_server_dry_run_and_not_by_a_dry_run(tmp_path, fake_cluster, capsys):
    del fake_cluster.claims[("default", "aegis-outputs")]
    with pytest.raises(AegisError, match="launcher.outputs.claim=aegis-outputs does not exist"):
        launch(tmp_path, "k8s-job", "launcher.server_dry_run=true")
    fake_cluster.requests.clear()
    assert launch(tmp_path, "k8s-job", "launcher.dry_run=true") == 0
    assert fake_cluster.requests == []


def test_the_manifest_pins_a_recorded_digest_and_says_so(tmp_path, fake_cluster, no_build_record, capsys):
    import json

    digest = "sha256:" + "c" * 64
    no_build_record.write_text(json.dumps({IMAGE: {"id": "sha256:" + "1" * 64, "accelerator": "cpu",
                                                   "revision": "3f2a1bc", "dirty": False,
                                                   "built_at": "2026-11-29T10:00:00+00:00", "digest": digest}}))
    assert launch(tmp_path, "pytorchjob", "launcher.wait=false") == 0
    [obj] = fake_cluster.objects.values()
    for replica in ("Master", "Worker"):
        [c] = obj["spec"]["pytorchReplicaSpecs"][replica]["template"]["spec"]["containers"]
        assert c["image"] == f"{IMAGE}@{digest}"
    notices = [line for line in capsys.readouterr().err.splitlines() if "pinned" in line]
    assert notices == [f"[k8s] image: launcher.image={IMAGE} is pinned to {IMAGE}@{digest}, the registry digest "
                       f"docker/build.sh recorded in {no_build_record}"]
