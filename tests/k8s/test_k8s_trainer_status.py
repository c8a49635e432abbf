"""``aegis status RUN`` of a TrainJob shows ``status.trainerStatus`` once the controller fills it
(Kubeflow Trainer v2.2+, feature gate ``TrainJobStatus``: the training process posts it to the
status server and the controller applies it; fields from ``pkg/apis/trainer/v1alpha1/
trainjob_types.go``, v2.3.0), read from the fake API server by a process that knows only the
run dir."""

from __future__ import annotations

import json

from aegis.k8s.status import job_status, trainer_progress
from aegis.launch.trainjob.kind import TRAINJOB
from test_k8s_lifecycle import submit, the_object
from test_k8s_trainjob import trainjob_pods

REPORTED = {"progressPercentage": 42, "estimatedRemainingSeconds": 185,
            "metrics": [{"name": "val/acc", "value": "0.91"}, {"name": "val/loss", "value": "0.31"}],
            "lastUpdatedTime": "2026-12-05T00:10:00Z"}


def test_aegis_status_shows_the_progress_the_training_reported(tmp_path, fake_cluster, capsys):
    from aegis.commands import main

    run_dir = submit(tmp_path, "trainjob", "strategy=ddp", "launcher.nodes=2")
    _, name, _ = the_object(fake_cluster)
    trainjob_pods(fake_cluster, name, 2)
    capsys.readouterr()
    assert main(["status", str(run_dir)]) == 0
    assert not any(line.startswith("progress") for line in capsys.readouterr().out.splitlines())

    obj = fake_cluster.get("trainjobs", name)
    fake_cluster.set_status("trainjobs", name, {**obj["status"], "trainerStatus": REPORTED})
    assert main(["status", str(run_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "running"
    assert "progress          42%, ~3 min left, val/acc=0.91 val/loss=0.31 (reported 2026-12-05T00:10:00Z)" in out

    assert main(["status", str(run_dir), "--json"]) == 0  # the controller's own object, for scripts
    assert json.loads(capsys.readouterr().out)["details"]["trainer_status"] == REPORTED


def test_the_progress_phrase():
    assert trainer_progress(None) is None and trainer_progress({}) is None
    assert trainer_progress({"progressPercentage": 100, "estimatedRemainingSeconds": 0,
                             "lastUpdatedTime": "t"}) == "100%, ~0 s left (reported t)"
    assert trainer_progress({"progressPercentage": 7, "estimatedRemainingSeconds": 7500}) == "7%, ~2 h 5 min left"
    many = [{"name": f"m{i}", "value": str(i)} for i in range(10)]
    assert trainer_progress({"metrics": many}) == "m0=0 m1=1 m2=2 m3=3 m4=4 m5=5 m6=6 m7=7 (+2 more)"
    obj = {"metadata": {"name": "j", "namespace": "default"},
           "status": {"conditions": [{"type": "Complete", "status": "True"}], "trainerStatus": REPORTED}}
    status = job_status(TRAINJOB, obj, [])
    assert status.state.value == "succeeded" and status.details["progress"].startswith("42%, ~3 min left")
