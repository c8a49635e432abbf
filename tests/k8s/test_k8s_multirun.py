"""``python train.py -m launcher=k8s-job model.lr=...``: all jobs submitted, then followed together."""

from __future__ import annotations

import time

from k8s_helpers import IMAGE, run_train


def sweep_life(fake, plural, obj):
    """A job runs only once both jobs of the sweep exist: a serial sweep would hang."""
    name = obj["metadata"]["name"]

    def life():
        assert fake.wait_for(lambda: len(fake.objects) == 2, timeout=20)
        fails = name.endswith("-1")
        pod = fake.add_pod(f"{name}-a", {"job-name": name}, "train")["metadata"]["name"]
        fake.container_state(pod, {"running": {}}, phase="Running")
        fake.log(pod, f"training {name}")
        time.sleep(0.3)
        fake.container_state(pod, {"terminated": {"exitCode": 2 if fails else 0}})
        condition = {"type": "Failed" if fails else "Complete", "status": "True"}
        fake.set_status("jobs", name, {"conditions": [condition]})

    fake.run(life)


def test_sweep_submits_every_job_before_following(tmp_path, fake_cluster):
    fake_cluster.on_create = sweep_life
    result = run_train("-m", "launcher=k8s-job", f"launcher.image={IMAGE}", "launcher.poll_interval_s=0.2",
                       "model.lr=1e-3,1e-2", cwd=tmp_path, env={"AEGIS_OUTPUT_ROOT": str(tmp_path / "out")},
                       timeout=60)
    names = sorted(name for _, _, name in fake_cluster.objects)
    assert len(names) == 2 and names[0].endswith("-0") and names[1].endswith("-1")
    assert result.returncode == 2, result.stderr[-3000:]
    for name in names:
        assert f"[{name}] training {name}" in result.stdout
    assert "Sweep outcome:" in result.stderr
    assert f"{names[0]} " in result.stderr and "succeeded" in result.stderr
    assert "failed (exit code 2)" in result.stderr
    # each job got its own value of the swept override
    commands = [o["spec"]["template"]["spec"]["containers"][0]["args"] for o in fake_cluster.objects.values()]
    assert sorted(next(a for a in c if a.startswith("model.lr=")) for c in commands) == ["model.lr=0.001", "model.lr=0.01"]
