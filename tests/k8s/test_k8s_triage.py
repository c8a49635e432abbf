"""Failure triage on Kubernetes: which pod (and rank) failed or is stuck, and why, in one paragraph.

The first half drives real submissions over HTTP against the fake API server
(tests/k8s/fake_k8s.py): pods are created as each controller labels them (the Training
Operator and Trainer inject ``PET_NPROC_PER_NODE``), then a fault plays out as the kubelet,
the scheduler and the registry report it (container states, pod status, events). The
follower in the submitting terminal must end with the triage and the exit code, and
``aegis status RUN`` must say the same from the run dir alone. The second half checks
``aegis.k8s.triage`` on pod dicts directly, for the cases a cluster cannot easily stage.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from aegis.commands import main as aegis
from aegis.launch import get_launcher
from k8s_helpers import IMAGE, compose_cfg, context_for

BASE = "training.kubeflow.org/job-name"
UNSCHEDULABLE = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
PULL_ERROR = ('rpc error: code = NotFound desc = failed to pull and unpack image "registry.example.com/aegis:0.1.0": '
              "not found")
EVICTION = ("The node was low on resource: memory. Threshold quantity: 100Mi, available: 80Mi. Container {c} was "
            "using 1900Mi, request is 2Gi")
MOUNT = ('MountVolume.SetUp failed for volume "outputs" : mount failed: exit status 32: mount.nfs: '
         "Connection timed out")
TRACEBACK = ["Epoch 0:  40%", "Traceback (most recent call last):", '  File "/app/train.py", line 9, in <module>',
             "    main()", "RuntimeError: loss is nan at step 41"]


def template(plural: str, obj: dict[str, Any]) -> tuple[str, str]:
    """The image and memory limit the object's pods get from its template."""
    spec = obj["spec"]
    if plural == "trainjobs":
        return spec["trainer"]["image"], spec["trainer"]["resourcesPerNode"]["limits"]["memory"]
    pod = spec["template"] if plural == "jobs" else spec["pytorchReplicaSpecs"]["Master"]["template"]
    [container] = pod["spec"]["containers"]
    return container["image"], container["resources"]["limits"]["memory"]


def make_pods(fake, plural: str, obj: dict[str, Any]) -> list[str]:
    """The object's pods by node rank, as its controller creates and labels them."""
    name = obj["metadata"]["name"]
    image, limit = template(plural, obj)
    if plural == "jobs":
        return [fake.add_pod(f"{name}-x7k2p", {"job-name": name}, "train", image=image,
                             memory_limit=limit)["metadata"]["name"]]
    pods = []
    for node in range(2):
        env = {"PET_NPROC_PER_NODE": "1", "PET_NODE_RANK": str(node), "PET_NNODES": "2"}
        if plural == "pytorchjobs":
            rtype, index = ("master", 0) if node == 0 else ("worker", node - 1)
            labels = {BASE: name, "training.kubeflow.org/job-role": rtype, "training.kubeflow.org/replica-type": rtype,
                      "training.kubeflow.org/replica-index": str(index)}
            pod_name, container = f"{name}-{rtype}-{index}", "pytorch"
        else:
            labels = {"jobset.sigs.k8s.io/jobset-name": name, "jobset.sigs.k8s.io/replicatedjob-name": "node",
                      "batch.kubernetes.io/job-completion-index": str(node)}
            pod_name, container = f"{name}-node-0-{node}-q8z2m", "node"
        pods.append(fake.add_pod(pod_name, labels, container, image=image, env=env, memory_limit=limit)
                    ["metadata"]["name"])
    return pods


def failed(fake, plural: str, name: str) -> None:
    reason = {"jobs": "BackoffLimitExceeded", "pytorchjobs": "PyTorchJobFailed", "trainjobs": "JobSetFailed"}[plural]
    fake.set_status(plural, name, {"conditions": [{"type": "Failed", "status": "True", "reason": reason}]})


def ended(at: str, code: int, reason: str) -> dict:
    return {"terminated": {"exitCode": code, "reason": reason, "startedAt": "2026-01-01T00:00:00Z",
                           "finishedAt": f"2026-01-01T00:00:{at}Z"}}


# Each fault: what happens to the pods (the failing one is the last: node rank 1 of a gang),
# what the triage must say, and the exit code the follower and ``aegis status`` give.

def oom(fake, plural, name, pods):
    for pod in pods:
        fake.container_state(pod, {"running": {}}, phase="Running")
    fake.log(pods[-1], "epoch 1 val/acc=0.50", "allocating the batch")
    time.sleep(0.3)
    fake.container_state(pods[-1], ended("01", 137, "OOMKilled"), phase="Failed")
    for pod in pods[:-1]:  # its peers stop (the gang supervisor: 143, a lost peer)
        fake.container_state(pod, ended("03", 143, "Error"), phase="Failed")
    failed(fake, plural, name)


def evicted(fake, plural, name, pods):
    for pod in pods:
        fake.pods[("default", pod)]["spec"]["nodeName"] = "node-a"
        fake.container_state(pod, {"running": {}}, phase="Running")
    time.sleep(0.3)
    container = fake.pods[("default", pods[-1])]["status"]["containerStatuses"][0]["name"]
    fake.event("Pod", pods[-1], "Evicted", EVICTION.format(c=container))
    fake.container_state(pods[-1], ended("01", 137, "ContainerStatusUnknown"))
    fake.pod_status(pods[-1], phase="Failed", reason="Evicted", message=EVICTION.format(c=container))
    for pod in pods[:-1]:
        fake.container_state(pod, ended("03", 143, "Error"), phase="Failed")
    failed(fake, plural, name)


def image_pull(fake, plural, name, pods):
    image = fake.pods[("default", pods[-1])]["spec"]["containers"][0]["image"]
    fake.event("Pod", pods[-1], "Failed", f'Failed to pull image "{image}": {PULL_ERROR}')
    fake.container_state(pods[-1], {"waiting": {"reason": "ErrImagePull", "message": PULL_ERROR}})
    time.sleep(0.2)
    fake.container_state(pods[-1], {"waiting": {"reason": "ImagePullBackOff",
                                                "message": f'Back-off pulling image "{image}"'}})


def unschedulable(fake, plural, name, pods):
    fake.event("Pod", pods[-1], "FailedScheduling", UNSCHEDULABLE)
    fake.pod_status(pods[-1], conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                           "message": UNSCHEDULABLE}])


def mount(fake, plural, name, pods):
    fake.event("Pod", pods[-1], "FailedMount", MOUNT)


FAULTS = {
    "oom": (oom, "out of memory (OOMKilled) at limit 2Gi; raise launcher.resources.memory", 137),
    "evicted": (evicted, f"evicted from node node-a: {EVICTION.format(c='{c}')}", 137),
    "image_pull": (image_pull, f"image {IMAGE} cannot be pulled (ImagePullBackOff: {PULL_ERROR})", 1),
    "unschedulable": (unschedulable, f"cannot be scheduled: {UNSCHEDULABLE.rstrip('.')}", 1),
    "mount": (mount, f"a volume cannot be mounted (FailedMount: {MOUNT})", 1),
}
PLURALS = {"k8s-job": "jobs", "pytorchjob": "pytorchjobs", "trainjob": "trainjobs"}
CONTAINERS = {"k8s-job": "train", "pytorchjob": "pytorch", "trainjob": "node"}


def where(launcher: str, pods: list[str]) -> str:
    """A Job's pod runs however many ranks its config says: named by the pod alone. A gang's
    pod of one process is its node rank."""
    return f"pod {pods[-1]}" if launcher == "k8s-job" else f"rank 1 (pod {pods[-1]})"


def follow(tmp_path, fake, launcher: str, fault: str, *extra: str) -> tuple[int, list[str], str]:
    """Submit and follow in this process; (exit code, pod names, stderr)."""
    plural, (act, _, _) = PLURALS[launcher], FAULTS[fault]
    made: list[str] = []

    def on_create(fake, plural_, obj):
        def life():
            time.sleep(0.1)
            if plural == "pytorchjobs":
                fake.set_status(plural, obj["metadata"]["name"], {"conditions": [{"type": "Created", "status": "True"}]})
            made.extend(make_pods(fake, plural, obj))
            act(fake, plural, obj["metadata"]["name"], made)

        fake.run(life)

    fake.on_create = on_create
    overrides = (f"launcher={launcher}", f"launcher.image={IMAGE}", "launcher.poll_interval_s=0.1",
                 "launcher.pending_timeout_s=1", *(("strategy=ddp", "launcher.nodes=2") if launcher != "k8s-job" else ()),
                 *extra)
    cfg = compose_cfg(*overrides)
    code = get_launcher(launcher).launch(cfg, context_for(cfg, overrides, tmp_path / "run"))
    return code, made, ""


CASES = [(launcher, fault) for launcher in ("k8s-job", "pytorchjob") for fault in FAULTS] + [
    ("trainjob", "oom"), ("trainjob", "unschedulable")]


@pytest.mark.parametrize("launcher, fault", CASES)
def test_the_follower_and_status_give_the_triage_and_the_exit_code(tmp_path, fake_cluster, capsys, launcher, fault):
    code, pods, _ = follow(tmp_path, fake_cluster, launcher, fault)
    _, cause, expected_code = FAULTS[fault]
    cause = cause.replace("{c}", CONTAINERS[launcher])
    err = capsys.readouterr().err
    assert code == expected_code, err
    assert f"{where(launcher, pods)}: {cause}" in err, err
    assert f"exited with code {expected_code}" not in err
    if expected_code != 1:  # it failed: the paragraph, then the outcome
        assert f"[k8s] Run failed: {where(launcher, pods)}: {cause}." in err, err
        assert f"failed (exit code {expected_code})" in err
    else:  # it never started: following stops after launcher.pending_timeout_s, the job stays
        assert "has not started after 1 s" in err and "the job is left in place" in err, err
        assert "cancel: python -m aegis cancel" in err
        assert list(fake_cluster.objects) and not fake_cluster.deleted

    # From the run dir alone, as in another terminal later.
    assert aegis(["status", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == ("failed" if expected_code != 1 else "pending")
    if expected_code != 1:
        assert f"Run failed: {where(launcher, pods)}: {cause}." in out
        assert f"{'exit code':<18}{expected_code}\n" in out
        # Following it again from another terminal ends the same way.
        assert aegis(["logs", str(tmp_path / "run"), "--follow"]) == expected_code
        assert f"Run failed: {where(launcher, pods)}: {cause}." in capsys.readouterr().err
    else:
        assert f"{'reason':<18}{where(launcher, pods)}: {cause}\n" in out


def test_the_failing_pods_last_lines_and_exception_are_in_the_paragraph(tmp_path, fake_cluster, capsys):
    """A worker raises; the master then stops (143). The worker is named, with its traceback's
    last line, though only the master's log was streamed; the exit code is the worker's."""

    def on_create(fake, plural, obj):
        def life():
            pods = make_pods(fake, plural, obj)
            for pod in pods:
                fake.container_state(pod, {"running": {}}, phase="Running")
            fake.log(pods[1], *TRACEBACK)
            time.sleep(0.3)
            fake.container_state(pods[1], ended("01", 1, "Error"), phase="Failed")
            fake.container_state(pods[0], ended("02", 143, "Error"), phase="Failed")
            failed(fake, plural, obj["metadata"]["name"])

        fake.run(life)

    fake_cluster.on_create = on_create
    overrides = ("launcher=pytorchjob", f"launcher.image={IMAGE}", "launcher.poll_interval_s=0.1", "strategy=ddp",
                 "launcher.nodes=2")
    cfg = compose_cfg(*overrides)
    assert get_launcher("pytorchjob").launch(cfg, context_for(cfg, overrides, tmp_path / "run")) == 1
    err = capsys.readouterr().err
    assert "Run failed: rank 1 (pod " in err and "-worker-0): raised RuntimeError: loss is nan at step 41." in err
    assert "[k8s]   | RuntimeError: loss is nan at step 41" in err
    assert "failed (exit code 1)" in err


def test_a_job_that_starts_late_is_followed_to_its_end(tmp_path, fake_cluster, capsys):
    """Pending for a while, but less than launcher.pending_timeout_s: no timeout."""

    def on_create(fake, plural, obj):
        def life():
            [pod] = make_pods(fake, plural, obj)
            unschedulable(fake, plural, obj["metadata"]["name"], [pod])
            time.sleep(1.0)
            fake.container_state(pod, {"running": {}}, phase="Running")
            fake.log(pod, "epoch 1")
            time.sleep(0.3)
            fake.container_state(pod, ended("05", 0, "Completed"), phase="Succeeded")
            fake.set_status(plural, obj["metadata"]["name"], {"conditions": [{"type": "Complete", "status": "True"}]})

        fake.run(life)

    fake_cluster.on_create = on_create
    overrides = ("launcher=k8s-job", f"launcher.image={IMAGE}", "launcher.poll_interval_s=0.1",
                 "launcher.pending_timeout_s=5")
    cfg = compose_cfg(*overrides)
    assert get_launcher("k8s-job").launch(cfg, context_for(cfg, overrides, tmp_path / "run")) == 0
    err = capsys.readouterr().err
    assert "has not started" not in err and "succeeded" in err


def test_time_queued_by_kueue_is_not_time_pending(tmp_path, fake_cluster, capsys):
    """Suspended by Kueue for longer than launcher.pending_timeout_s, then admitted: followed to the end."""
    fake_cluster.kueue = True

    def on_create(fake, plural, obj):
        def life():
            name = obj["metadata"]["name"]
            time.sleep(2.5)
            fake.suspend(plural, name, False)
            [pod] = make_pods(fake, plural, obj)
            fake.container_state(pod, {"running": {}}, phase="Running")
            time.sleep(0.3)
            fake.container_state(pod, ended("05", 0, "Completed"), phase="Succeeded")
            fake.set_status(plural, name, {"conditions": [{"type": "Complete", "status": "True"}]})

        fake.run(life)

    fake_cluster.on_create = on_create
    overrides = ("launcher=k8s-job", f"launcher.image={IMAGE}", "launcher.poll_interval_s=0.1",
                 "launcher.pending_timeout_s=1", "launcher.queue=team-a")
    cfg = compose_cfg(*overrides)
    assert get_launcher("k8s-job").launch(cfg, context_for(cfg, overrides, tmp_path / "run")) == 0
    err = capsys.readouterr().err
    assert "queued in LocalQueue team-a" in err and "has not started" not in err and "succeeded" in err


def test_pending_timeout_must_be_positive(tmp_path):
    from k8s_helpers import run_train

    result = run_train("launcher=k8s-job", f"launcher.image={IMAGE}", "launcher.pending_timeout_s=0",
                       "launcher.dry_run=true", cwd=tmp_path)
    assert result.returncode == 1
    assert "launcher.pending_timeout_s" in result.stderr and "> 0" in result.stderr


# ------------------------------------------------------------ the reading itself, no cluster


def _pod(name: str, state: dict, *, phase="Running", labels=None, procs="1", last=None, restarts=0, **status):
    cs = {"name": "pytorch", "restartCount": restarts, "state": state, "image": IMAGE}
    if last:
        cs["lastState"] = last
    return {"metadata": {"name": name, "labels": labels or {}, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "pytorch", "image": IMAGE, "env": [{"name": "PET_NPROC_PER_NODE",
                                                                               "value": procs}],
                                     "resources": {"limits": {"memory": "4Gi"}}}]},
            "status": {"phase": phase, "containerStatuses": [cs], **status}}


def _worker(index: int, state: dict, **kw) -> dict:
    labels = {BASE: "j", "training.kubeflow.org/replica-type": "worker", "training.kubeflow.org/replica-index": str(index)}
    return _pod(f"j-worker-{index}", state, labels=labels, **kw)


def _master(state: dict, **kw) -> dict:
    labels = {BASE: "j", "training.kubeflow.org/job-role": "master", "training.kubeflow.org/replica-type": "master",
              "training.kubeflow.org/replica-index": "0"}
    return _pod("j-master-0", state, labels=labels, **kw)


FAILED = {"metadata": {"name": "j", "namespace": "default"},
          "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "PyTorchJobFailed"}]}}


def diagnose(*pods, events=()):
    from aegis.launch.pytorchjob.kind import PYTORCHJOB
    from aegis.k8s.triage import diagnose

    return diagnose(PYTORCHJOB, FAILED, list(pods), list(events)).failure


def test_a_crash_looping_pod_is_named_by_its_last_end_with_its_restarts():
    f = diagnose(_master({"running": {}}),
                 _worker(1, {"waiting": {"reason": "CrashLoopBackOff"}}, restarts=3,
                         last=ended("04", 137, "OOMKilled")))
    assert (f.pod, f.rank, f.exit_code, f.signal) == ("j-worker-1", 2, 137, "SIGKILL")
    assert f.cause == "out of memory (OOMKilled) at limit 4Gi, after 3 restarts; raise launcher.resources.memory"


def test_the_pod_with_a_cause_of_its_own_is_named_before_those_that_lost_a_peer():
    """The peers stopped first (143) and one exited 1 (rendezvous lost); the OOMKilled one is the cause."""
    f = diagnose(_master(ended("01", 143, "Error")), _worker(0, ended("02", 1, "Error")),
                 _worker(1, ended("03", 137, "OOMKilled")))
    assert f.pod == "j-worker-1" and f.cause.startswith("out of memory")
    f = diagnose(_master(ended("01", 143, "Error")), _worker(0, ended("02", 1, "Error")))
    assert (f.pod, f.cause) == ("j-worker-0", "exited with code 1")
    f = diagnose(_master(ended("02", 1, "Error")), _worker(0, ended("01", 1, "Error")))
    assert f.pod == "j-worker-0"  # of equals, the first to end


def test_a_pod_of_several_ranks_is_named_by_pod_alone_unless_its_report_says():
    from aegis.k8s.triage import own_report

    f = diagnose(_worker(0, ended("01", 1, "Error"), procs="4"))
    assert (f.rank, f.where()) == (None, "pod j-worker-0")
    f = own_report(f, ["Run failed: rank 6: raised ValueError: bad label 11. (exit code 1)"])
    assert (f.rank, f.cause) == (6, "raised ValueError: bad label 11")


def test_container_cannot_run_and_config_errors_say_what_the_runtime_said():
    f = diagnose(_master(ended("01", 128, "ContainerCannotRun") | {}, phase="Failed"))
    assert f.cause.startswith("the container cannot run (ContainerCannotRun")
    f = diagnose(_master({"terminated": {"exitCode": 128, "reason": "StartError",
                                         "message": 'exec: "python": executable file not found in $PATH'}}))
    assert f.cause == 'the container cannot run (StartError: exec: "python": executable file not found in $PATH)'
    f = diagnose(_master({"waiting": {"reason": "CreateContainerConfigError",
                                      "message": 'secret "mlflow" not found'}}, phase="Pending"))
    assert f.cause.startswith('the container cannot be created (CreateContainerConfigError: secret "mlflow" not '
                              "found); the PyTorchJob gave up (PyTorchJobFailed)")


def test_a_preempted_pod_says_so():
    f = diagnose(_master(ended("01", 143, "Error"), phase="Failed",
                         conditions=[{"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}]))
    assert f.cause == "preempted by the scheduler for a higher-priority pod" and f.signal == "SIGTERM"


def test_a_job_with_no_pod_left_says_its_condition():
    from aegis.launch.k8s_job.kind import JOB
    from aegis.k8s.triage import diagnose as raw

    obj = {"metadata": {"name": "j"}, "status": {"conditions": [
        {"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
         "message": "Job was active longer than specified deadline"}]}}
    f = raw(JOB, obj, [], []).failure
    assert f.cause == ("ran longer than launcher.active_deadline_seconds and was stopped (DeadlineExceeded: Job was "
                       "active longer than specified deadline)")
    quota = {"involvedObject": {"kind": "Job", "name": "j"}, "reason": "FailedCreate", "type": "Warning",
             "message": 'pods "j-abc" is forbidden: exceeded quota: compute, requested: memory=2Gi'}
    f = raw(JOB, {"metadata": {"name": "j"}, "status": {}}, [], [quota]).failure
    assert f.cause.startswith('no pod can be created (FailedCreate: pods "j-abc" is forbidden: exceeded quota')


def test_only_a_traceback_names_an_exception():
    from aegis.failures.record import Failure
    from aegis.k8s.triage import own_report

    f = own_report(Failure("exited with code 1", exit_code=1), TRACEBACK + ["", "Set the environment variable "
                                                                             "HYDRA_FULL_ERROR=1 for a complete stack trace."])
    assert (f.exception, f.message, f.cause) == ("RuntimeError", "loss is nan at step 41",
                                                 "raised RuntimeError: loss is nan at step 41")
    f = own_report(Failure("exited with code 2", exit_code=2), ["usage: x", "Error: bad option"])
    assert (f.exception, f.cause) == (None, "exited with code 2") and f.log_tail[-1] == "Error: bad option"
    f = own_report(Failure("out of memory (OOMKilled)", exit_code=137), TRACEBACK)
    assert f.cause == "out of memory (OOMKilled)" and f.exception == "RuntimeError"  # the kubelet's word stands


@pytest.mark.slow  # MLflow migrating a fresh SQLite store: ~20 s on a busy machine
def test_a_failure_the_pod_could_not_record_is_tagged_on_its_mlflow_run(tmp_path, fake_cluster, capsys):
    """An OOM-killed pod's process is gone; where its tracking store is reachable from here
    (logger.tracking_uri), the follower tags the run it created and ends it FAILED."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    made: dict[str, str] = {}

    def on_create(fake, plural, obj):
        def life():  # the pod's run creates its MLflow run, tagged with the Aegis run id
            experiment = client.create_experiment("train", artifact_location=str(tmp_path / "artifacts"))
            made["run"] = client.create_run(experiment, tags={"aegis.run_id": obj["metadata"]["annotations"][
                "aegis.dev/run-id"]}).info.run_id
            oom(fake, plural, obj["metadata"]["name"], make_pods(fake, plural, obj))

        fake.run(life)

    fake_cluster.on_create = on_create
    overrides = ("launcher=k8s-job", f"launcher.image={IMAGE}", "launcher.poll_interval_s=0.1", "logger=mlflow",
                 f"logger.tracking_uri={uri}")
    cfg = compose_cfg(*overrides)
    assert get_launcher("k8s-job").launch(cfg, context_for(cfg, overrides, tmp_path / "run")) == 137
    err = capsys.readouterr().err
    assert f"MLflow run {made['run']}: tagged aegis.failures.record.* and ended FAILED" in err, err
    run = client.get_run(made["run"])
    assert run.info.status == "FAILED"
    assert run.data.tags["aegis.failures.record.cause"].startswith("out of memory (OOMKilled) at limit 2Gi")
    assert run.data.tags["aegis.failures.record.exit_code"] == "137" and run.data.tags["aegis.failures.record.signal"] == "SIGKILL"


def test_a_store_only_the_pods_reach_is_not_tagged_from_here(tmp_path):
    """The embedded store on the outputs volume (a path that does not exist on this machine):
    nothing to tag from here, and nothing said."""
    from aegis.failures.record import Failure
    from aegis.failures.tags import tag

    pods_store = {"uri": f"sqlite:///{tmp_path}/not-here/mlflow.db", "experiment": "train"}
    assert tag(pods_store, "run-1", Failure("out of memory (OOMKilled)")) is None
    assert tag(None, "run-1", Failure("out of memory (OOMKilled)")) is None
