"""Real searches on a local Ray (marker ``ray``): trials train the smoke config in Ray workers."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import REPO, TRAIN, run_train, sigint_as_at_a_terminal, summary

pytestmark = [pytest.mark.ray]
pytest.importorskip("ray")

SMALL = ["search=ray-tune", "trainer=smoke", "hydra.sweeper.num_cpus=2", "hydra.sweeper.seed=0"]


def sweep_dir(root: Path, run_id: str) -> Path:
    return root / "train" / "multiruns" / run_id


def trial_dirs(sweep: Path) -> list[Path]:
    return sorted((p for p in sweep.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def test_asha_search_writes_best_yaml_and_plot_tracks_children_and_reproduces(tmp_path):
    proc = run_train(
        [*SMALL, "run_id=hpo", "trainer.max_epochs=4", "model.lr=tag(log,interval(1e-4,3e-2))",
         "model.hidden_dims=choice([64],[128,64])", "hydra.sweeper.num_samples=4",
         "hydra.sweeper.scheduler.name=asha", "hydra.sweeper.max_concurrent_trials=2"],
        tmp_path, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = sweep_dir(tmp_path, "hpo")
    trials = trial_dirs(sweep)
    assert [t.name for t in trials] == ["0", "1", "2", "3"]
    for trial in trials:
        assert (trial / ".hydra" / "overrides.yaml").is_file() and (trial / "checkpoints" / "last.ckpt").is_file()
    assert (sweep / "ray").is_dir() and (sweep / "trials.png").stat().st_size > 10_000

    best = yaml.safe_load((sweep / "best.yaml").read_text())
    assert best["metric"] == "val/acc" and best["mode"] == "max" and 0.1 < best["value"] <= 1.0
    values = [summary(t)["checkpoints"]["best_score"] for t in trials if (t / "summary.json").is_file()]
    assert values and best["value"] >= max(values) - 1e-6  # trials ASHA stopped have no summary
    assert best["config"]["model"]["lr"] == best["params"]["model.lr"]
    assert "search=" not in best["command"] and "run_id" not in best["command"]
    assert f"Reproduce it: {best['command']}" in proc.stderr + proc.stdout

    # MLflow: one parent run for the search, every trial a child of it.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("train").experiment_id])
    parents = [r for r in runs if r.data.tags.get("aegis.kind") == "search"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == 4
    status = {r.data.tags.get("aegis.run_id"): r.info.status for r in children}
    for trial in trials:  # a trial ASHA stopped is KILLED in MLflow, not FAILED
        expected = "KILLED" if summary(trial)["status"] == "stopped" else "FINISHED"
        assert status[f"hpo-{trial.name}"] == expected
    from aegis.tune.numbering import reported

    for child in children:  # each trial's lineage reruns it as a single run (was python default_worker.py ...)
        assert child.data.tags["aegis.reproduce"].startswith("python train.py trainer=smoke")
        assert "search=" not in child.data.tags["aegis.reproduce"]
    best_child = next(c for c in children if c.data.tags["aegis.trial_number"] == str(best["trial_number"]))
    assert best_child.data.tags["aegis.reproduce"] == best["command"]
    for child in children:  # epochs_completed counts the epoch at whose report ASHA stopped the trial
        run_dir = Path(child.data.tags["aegis.run_dir"])
        (ray_dir,) = [p for p in (sweep / "ray").iterdir() if child.data.tags["aegis.trial_id"] in p.name]
        assert summary(run_dir)["epochs_completed"] == len(reported(str(ray_dir), "val/acc"))
    assert parents[0].data.metrics["best/val/acc"] == pytest.approx(best["value"])

    # The printed command reruns the best trial as a single run with the same result.
    argv = shlex.split(best["command"])
    assert argv[:2] == ["python", "train.py"]
    rerun_root = tmp_path / "rerun"
    again = run_train([*argv[2:], "logger=csv"], rerun_root, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    (rerun_dir,) = [p.parent for p in rerun_root.rglob("summary.json")]
    assert summary(rerun_dir)["checkpoints"]["best_score"] == pytest.approx(best["value"], abs=0.02)


def test_a_crashing_trial_is_reported_and_the_search_goes_on(tmp_path):
    # model.lr=1e30 passes the config checks (a finite rate > 0) but its loss becomes infinite
    # at the second step, which fails the run before any validation epoch is reported.
    args = [*SMALL, "run_id=crash", "model.lr=tag(grid,choice(0.01,1e30))",
            "hydra.sweeper.num_samples=1", "hydra.sweeper.max_concurrent_trials=1"]
    proc = run_train([*args, "hydra.sweeper.max_failures=1"], tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = sweep_dir(tmp_path, "crash")
    best = yaml.safe_load((sweep / "best.yaml").read_text())
    assert best["params"]["model.lr"] == 0.01
    statuses = sorted(summary(t)["status"] for t in trial_dirs(sweep))  # the crashed trial keeps its record
    assert statuses == ["completed", "failed"]
    (crashed,) = [t for t in trial_dirs(sweep) if summary(t)["status"] == "failed"]
    failure = summary(crashed)["failure"]  # the cause as the trial saw it, not "exit code 1" or Ray's wrapper
    assert "NaN or infinite" in failure["cause"] and "\x1b" not in json.dumps(summary(crashed))
    assert "exit code" not in failure["cause"] and "RayTaskError" not in failure["cause"]
    log = crashed / "train.log"
    assert "NaN or infinite" in log.read_text()
    final = [line for line in (proc.stderr + proc.stdout).splitlines() if f"(log: {log})" in line]
    assert len(final) == 1 and "failed" in final[0] and failure["cause"][:40] in final[0]  # the final table's row

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("train").experiment_id])
    by_dir = {r.data.tags.get("aegis.run_dir"): r for r in runs}
    assert by_dir[str(crashed)].info.status == "FAILED"
    assert by_dir[str(crashed)].data.tags["aegis.failures.record.cause"] == failure["cause"]
    assert {r.info.status for r in runs} == {"FINISHED", "FAILED"}  # the parent and the good trial finished

    over_budget = run_train([*args, "run_id=crash0"], tmp_path, timeout=600)
    assert over_budget.returncode == 1
    assert "more than hydra.sweeper.max_failures=0" in over_budget.stderr
    assert f"(its log: {sweep_dir(tmp_path, 'crash0')}/" in over_budget.stderr  # the trial's train.log


def test_an_interrupted_search_resumes_without_redoing_finished_trials(tmp_path):
    args = [*SMALL, "run_id=res", "trainer.max_epochs=40", "model.lr=choice(0.01,0.003,0.001)",
            "hydra.sweeper.num_samples=3", "hydra.sweeper.max_concurrent_trials=1"]
    env = {**os.environ, "AEGIS_OUTPUT_ROOT": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    driver = subprocess.Popen([sys.executable, str(TRAIN), *args], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              preexec_fn=sigint_as_at_a_terminal)
    sweep = sweep_dir(tmp_path, "res")
    deadline = time.time() + 300
    try:
        while time.time() < deadline and driver.poll() is None:
            # One trial at a time: trial 1 runs once Ray has recorded trial 0 as finished;
            # interrupted once it has reported an epoch (its Ray checkpoint's pointer).
            if (sweep / "1" / "tune_checkpoint" / "pointer" / "pointer.json").is_file():
                break
            time.sleep(0.2)
        assert driver.poll() is None, "the search ended before it could be interrupted"
        driver.send_signal(signal.SIGINT)
        out, _ = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130, out[-3000:]
    assert "Ray Tune saved the search. Continue it with the same command." in out  # run_id=res is in it
    finished = {t.name: summary(t)["started_at"] for t in trial_dirs(sweep)
                if (t / "summary.json").is_file() and summary(t)["status"] == "completed"}
    assert finished and not (sweep / "best.yaml").exists()
    # The trial the interrupt cut short is "interrupted" (not "stopped", which is ASHA's), with
    # the epochs it completed; its MLflow run is KILLED until the search resumes.
    cut = [t for t in trial_dirs(sweep) if t.name not in finished and (t / "summary.json").is_file()]
    assert cut and {summary(t)["status"] for t in cut} == {"interrupted"}
    from aegis.tune.numbering import reported

    before = {p.name: reported(str(p), "val/acc") for p in (sweep / "ray").iterdir() if p.is_dir()}
    for trial in cut:  # the epochs it completed: those Ray heard of, or one more the interrupt cut off
        (ray_dir,) = [name for name in before if json.loads((trial / "trial.json").read_text())["trial_id"] in name]
        assert 0 < len(before[ray_dir]) <= summary(trial)["epochs_completed"] <= len(before[ray_dir]) + 1

    resumed = run_train(args, tmp_path, timeout=600)  # the same command, as the message says
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    trials = trial_dirs(sweep)
    assert len(trials) == 3
    for trial in trials:
        assert summary(trial)["status"] == "completed"
    for name, started in finished.items():  # not redone
        assert summary(sweep / name)["started_at"] == started
    assert (sweep / "best.yaml").is_file()
    assert json.loads((sweep / "0" / "summary.json").read_text())["epochs_completed"] == 40
    for name, history in before.items():  # one continuous history per trial, as Ray and the plot see it
        after = reported(str(sweep / "ray" / name), "val/acc")
        assert [e for e, _ in after] == list(range(1, 41)) and after[: len(history)] == history

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("train").experiment_id])
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    for run in runs:
        for key in set(run.data.metrics) - {"epoch"}:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert len(steps) == len(set(steps)), key
