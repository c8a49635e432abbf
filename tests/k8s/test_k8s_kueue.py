"""Kueue for every Kubernetes launcher: the queue and priority labels on the job object, and a
queued, preempted and readmitted job followed to its end against the fake API server."""

from __future__ import annotations

import time

import kubernetes_validate
import pytest
import yaml

from aegis.k8s.validate import KUBERNETES_VERSION
from aegis.launch import get_launcher
from aegis.core.lifecycle import JobRef
from helpers import tier_table
from k8s_helpers import IMAGE, compose_cfg, context_for, run_train
from test_k8s_client import launch
from test_k8s_lifecycle import reattach, submit, the_object

QUEUE, PRIORITY = "kueue.x-k8s.io/queue-name", "kueue.x-k8s.io/priority-class"
KUEUE = ("launcher.queue=team-a", "launcher.priority_class=high")
LAUNCHERS = [("k8s-job", "jobs"), ("pytorchjob", "pytorchjobs"), ("trainjob", "trainjobs")]
# Each kind's pods as its controller labels them (the primary replica), and its training container.
PODS = {
    "jobs": (lambda name: {"job-name": name}, "train", "Complete"),
    "pytorchjobs": (lambda name: {"training.kubeflow.org/job-name": name, "training.kubeflow.org/job-role": "master",
                                  "training.kubeflow.org/replica-type": "master",
                                  "training.kubeflow.org/replica-index": "0"}, "pytorch", "Succeeded"),
    "trainjobs": (lambda name: {"jobset.sigs.k8s.io/jobset-name": name, "jobset.sigs.k8s.io/replicatedjob-name": "node",
                                "batch.kubernetes.io/job-completion-index": "0"}, "node", "Complete"),
}


def kueue_for(launcher):
    """KUEUE, and for a PyTorchJob the word that this cluster's Kueue manages PyTorchJobs (its
    integration is off in Kueue v0.19's default configuration: test_k8s_controllers)."""
    return (*KUEUE, "launcher.kueue_pytorchjob=enabled") if launcher == "pytorchjob" else KUEUE


def render(launcher, tmp_path, *overrides):
    overrides = (f"launcher={launcher}", f"launcher.image={IMAGE}", *overrides)
    cfg = compose_cfg(*overrides)
    return get_launcher(launcher).render(cfg, context_for(cfg, overrides, tmp_path / "run")).manifest


def suspend_values(node):
    """Every ``suspend`` key anywhere in the manifest."""
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "suspend"] + [x for v in node.values() for x in suspend_values(v)]
    if isinstance(node, list):
        return [x for v in node for x in suspend_values(v)]
    return []


@pytest.mark.parametrize("launcher, _", LAUNCHERS)
def test_queue_and_priority_label_the_job_object_only_and_never_touch_suspend(tmp_path, launcher, _):
    manifest = render(launcher, tmp_path, *kueue_for(launcher), "strategy=ddp")
    labels = manifest["metadata"]["labels"]
    assert labels[QUEUE] == "team-a" and labels[PRIORITY] == "high"
    spec = yaml.safe_dump(manifest["spec"])  # Kueue reads the object: its pods carry no Kueue label
    assert "kueue.x-k8s.io" not in spec and "priorityClassName" not in spec
    assert suspend_values(manifest) == []  # Kueue's webhook suspends it; Aegis never does


@pytest.mark.parametrize("launcher, _", LAUNCHERS)
def test_no_kueue_keys_render_nothing_new(tmp_path, launcher, _):
    manifest = render(launcher, tmp_path, "strategy=ddp")
    assert not [k for k in manifest["metadata"]["labels"] if k.startswith("kueue.x-k8s.io/")]
    assert suspend_values(manifest) == []


def test_pod_priority_class_is_the_pods_priority_class_name(tmp_path):
    manifest = render("k8s-job", tmp_path, "launcher.pod_priority_class=high-priority")
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    assert manifest["spec"]["template"]["spec"]["priorityClassName"] == "high-priority"
    assert not [k for k in manifest["metadata"]["labels"] if k.startswith("kueue.x-k8s.io/")]


# One kind through python train.py in the default tier: every kind's labels are rendered
# in-process above (test_queue_and_priority_label_the_job_object_only_and_never_touch_suspend).
@pytest.mark.parametrize("launcher", tier_table(["k8s-job", "pytorchjob", "trainjob"], default=[0]))
def test_dry_run_on_the_command_line_prints_both_labels(tmp_path, launcher):
    result = run_train(f"launcher={launcher}", f"launcher.image={IMAGE}", *kueue_for(launcher), "launcher.dry_run=true",
                       *(["strategy=ddp"] if launcher != "k8s-job" else []),
                       cwd=tmp_path, env={"AEGIS_OUTPUT_ROOT": str(tmp_path / "out")})
    assert result.returncode == 0, result.stderr[-2000:]
    labels = yaml.safe_load(result.stdout)["metadata"]["labels"]
    assert (labels[QUEUE], labels[PRIORITY]) == ("team-a", "high")


def test_a_bad_queue_name_is_one_sentence_and_nothing_is_rendered(tmp_path):
    out = tmp_path / "out"
    result = run_train("launcher=k8s-job", f"launcher.image={IMAGE}", "launcher.queue='Bad_Queue!'",
                       "launcher.dry_run=true", cwd=tmp_path, env={"AEGIS_OUTPUT_ROOT": str(out)})
    assert result.returncode == 1 and result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == ["Error: launcher.queue='Bad_Queue!' is not a valid LocalQueue name: expected a DNS-1123 "
                      "subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter or "
                      "digit, at most 63 characters), e.g. team-a."]
    assert not out.exists()


# ------------------------------------------------------------ queued, as status reads it

def test_status_of_a_job_kueue_holds_is_queued_in_its_local_queue(tmp_path, fake_cluster):
    fake_cluster.kueue = True
    run_dir = submit(tmp_path, "k8s-job", *KUEUE)
    _, name, obj = the_object(fake_cluster)
    assert obj["spec"]["suspend"] is True  # the webhook's doing, not the manifest's
    [status] = reattach(run_dir, "status")
    assert status["state"] == "queued" and status["replicas"] == []
    assert status["reason"].startswith("queued in LocalQueue team-a for ")
    assert f"(since {obj['status']['conditions'][0]['lastTransitionTime']})" in status["reason"]
    assert status["details"]["queue"] == "team-a"

    fake_cluster.suspend("jobs", name, False)  # admitted: pending until a pod starts
    [status] = reattach(run_dir, "status")
    assert status["state"] == "pending" and status["reason"] is None


def test_aegis_status_prints_queued_first(tmp_path, fake_cluster, capsys):
    from aegis.commands import main

    fake_cluster.kueue = True
    run_dir = submit(tmp_path, "pytorchjob", "strategy=ddp", *kueue_for("pytorchjob"))
    _, _, obj = the_object(fake_cluster)
    assert obj["spec"]["runPolicy"]["suspend"] is True
    capsys.readouterr()
    assert main(["status", str(run_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "queued"
    assert any(line.startswith("reason") and "queued in LocalQueue team-a for " in line for line in out), out


@pytest.mark.parametrize("suspend, conditions, state", [
    (True, [], "queued"),  # flagged, the controller not yet reporting it
    (None, [{"type": "Suspended", "status": "True"}], "queued"),
    (False, [{"type": "Suspended", "status": "True"}], "pending"),  # just admitted
    (True, [{"type": "Complete", "status": "True"}], "succeeded"),  # an end is an end
])
def test_the_suspend_flag_and_condition_decide_queued(suspend, conditions, state):
    from aegis.k8s.status import job_status
    from aegis.launch.k8s_job.kind import JOB

    obj = {"metadata": {"name": "j", "labels": {QUEUE: "team-a"}, "creationTimestamp": "2026-01-01T00:00:00Z"},
           "spec": {} if suspend is None else {"suspend": suspend}, "status": {"conditions": conditions}}
    assert job_status(JOB, obj, []).state.value == state


# ------------------------------------------------------------ preempted and readmitted

def preempted_once(launcher, plural, seen):
    """Kueue's part and the controllers': queued at creation (the webhook), admitted, preempted
    (suspended, pods stopped and deleted), readmitted, and new pods that resume and succeed.
    ``seen`` gets what ``status`` said while the job was queued."""
    labels, container, done = PODS[plural]

    def pod(fake, name, n):
        return fake.add_pod(f"{name}-{n}", labels(name), container)["metadata"]["name"]

    def status_now(run_dir):
        ref = JobRef.read(run_dir)
        return get_launcher(launcher).status(ref)

    def on_create(fake, _, obj):
        name = obj["metadata"]["name"]

        def life():
            run_dir = seen["root"] / "run"
            assert fake.wait_for(lambda: (run_dir / "job.json").exists())
            time.sleep(0.4)
            seen["first"] = status_now(run_dir)
            fake.suspend(plural, name, False)  # admitted
            first = pod(fake, name, 1)
            fake.container_state(first, {"running": {}}, phase="Running")
            fake.log(first, "epoch 1 val/acc=0.50")
            time.sleep(0.6)
            fake.suspend(plural, name, True)  # preempted: suspended, its pods stopped and deleted
            fake.log(first, "SIGTERM: checkpoint written")
            fake.container_state(first, {"terminated": {"exitCode": 143, "reason": "Error"}}, phase="Failed")
            time.sleep(0.3)
            fake.delete_pod(first)
            time.sleep(0.5)
            seen["requeued"] = status_now(run_dir)
            fake.suspend(plural, name, False)  # readmitted
            second = pod(fake, name, 2)
            fake.container_state(second, {"running": {}}, phase="Running")
            fake.log(second, "resumed from last.ckpt", "epoch 2 val/acc=0.90")
            time.sleep(0.4)
            fake.container_state(second, {"terminated": {"exitCode": 0, "reason": "Completed"}}, phase="Succeeded")
            fake.set_status(plural, name, {"conditions": [{"type": done, "status": "True"}]})

        fake.run(life)

    return on_create


@pytest.mark.parametrize("launcher, plural", LAUNCHERS)
def test_preemption_by_kueue_is_followed_through_to_success(tmp_path, fake_cluster, capsys, launcher, plural):
    seen = {"root": tmp_path}
    fake_cluster.kueue = True
    fake_cluster.on_create = preempted_once(launcher, plural, seen)
    assert launch(tmp_path, launcher, *kueue_for(launcher), "strategy=ddp") == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["epoch 1 val/acc=0.50", "SIGTERM: checkpoint written", "resumed from last.ckpt",
                                "epoch 2 val/acc=0.90"]
    assert err.count("preempted by Kueue, requeued in LocalQueue team-a") == 1, err
    assert err.count("queued in LocalQueue team-a for ") == 1  # at first, before admission
    assert err.count("admitted by Kueue from LocalQueue team-a after ") == 2
    assert "succeeded" in err and "failed" not in err
    for when in ("first", "requeued"):
        assert seen[when].state.value == "queued", (when, seen[when])
        assert seen[when].reason.startswith("queued in LocalQueue team-a for "), seen[when].reason
    assert seen["requeued"].replicas == []  # the preempted pod is gone


def test_a_kueue_label_among_launcher_labels_is_refused():
    """``launcher.labels`` label the pods too, where a queue label does not belong."""
    from omegaconf import OmegaConf

    from aegis.errors import Problems
    from aegis.k8s import kueue

    cfg = OmegaConf.create({"launcher": {"queue": None, "priority_class": None, "pod_priority_class": None,
                                         "labels": {QUEUE: "team-a"}}})
    found = Problems()
    kueue.check(cfg, found)
    assert found.sentences == [f"launcher.labels.{QUEUE} would put a Kueue label on the pods as well as the job: "
                               "expected launcher.queue=team-a instead, which labels the job object only."]
