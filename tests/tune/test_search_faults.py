"""Searches that stay right through faults (marker ``ray``): trial identity under Optuna, a
driver killed with SIGKILL mid-search and the same command run again, checked through the
files a user reads and MLflow's own client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import REPO, TRAIN, run_train, summary
from test_search import SMALL, sweep_dir, trial_dirs

pytestmark = [pytest.mark.ray]
pytest.importorskip("ray")



def mlflow_tree(root: Path, run_id: str, trials: int) -> tuple[object, list]:
    """The search's MLflow runs, checked clean: one FINISHED parent, one child per trial dir
    (by its number), nothing left RUNNING, no metric logged twice at one step."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("train").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("aegis.kind") == "search"]
    assert parent.info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 1 + trials and len(children) == trials
    sweep = sweep_dir(root, run_id)
    assert sorted(int(c.data.tags["aegis.trial_number"]) for c in children) == list(range(trials))
    for child in children:
        assert child.info.status != "RUNNING", child.data.tags
        assert child.data.tags["aegis.run_dir"] == str(sweep / child.data.tags["aegis.trial_number"])
        for key in set(child.data.metrics) - {"epoch"}:  # Lightning logs "epoch" with every call, by design
            steps = [m.step for m in client.get_metric_history(child.info.run_id, key)]
            assert len(steps) == len(set(steps)), f"{key} logged twice at a step: {sorted(steps)}"
    return client, children


def test_optuna_trials_keep_one_identity_in_run_dirs_best_yaml_and_mlflow(tmp_path):
    pytest.importorskip("optuna")
    proc = run_train([*SMALL, "run_id=opt", "model.lr=tag(log,interval(1e-3,1e-1))", "model.dropout=interval(0,0.3)",
                      "hydra.sweeper.search_alg=optuna", "hydra.sweeper.num_samples=3",
                      "hydra.sweeper.max_concurrent_trials=2"], tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = sweep_dir(tmp_path, "opt")
    assert [t.name for t in trial_dirs(sweep)] == ["0", "1", "2"]
    best = yaml.safe_load((sweep / "best.yaml").read_text())
    run_dir = Path(best["run_dir"])
    assert run_dir.is_dir() and run_dir == sweep / str(best["trial_number"])
    assert best["config"] == yaml.safe_load((run_dir / "config.yaml").read_text())
    assert best["config"]["model"]["lr"] == best["params"]["model.lr"]
    assert best["value"] == pytest.approx(summary(run_dir)["checkpoints"]["best_score"])
    assert best["value"] == max(summary(t)["checkpoints"]["best_score"] for t in trial_dirs(sweep))
    _, children = mlflow_tree(tmp_path, "opt", 3)
    assert {c.info.status for c in children} == {"FINISHED"}
    by_number = {c.data.tags["aegis.trial_number"]: c for c in children}
    assert float(by_number[str(best["trial_number"])].data.params["model.lr"]) == pytest.approx(best["params"]["model.lr"])


def _progress_epochs(sweep: Path) -> dict[str, list[int]]:
    """Each Ray trial's reported epochs, as Ray's progress.csv holds them."""
    import csv

    found = {}
    for progress in (sweep / "ray").glob("*/progress.csv"):
        with progress.open(newline="") as handle:
            found[progress.parent.name] = [int(row["epoch"]) for row in csv.DictReader(handle)]
    return found


@pytest.mark.parametrize("how", ["sigkill"])
def test_a_search_whose_driver_is_killed_resumes_with_the_same_command(tmp_path, how):
    # Two trials at a time, long enough (15 epochs) to be killed in the middle.
    args = [*SMALL, "run_id=k9", "trainer.max_epochs=15", "model.lr=choice(0.01,0.003,0.001)",
            "hydra.sweeper.num_samples=3", "hydra.sweeper.max_concurrent_trials=2"]
    env = {**os.environ, "AEGIS_OUTPUT_ROOT": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = (tmp_path / "first.log").open("w")
    driver = subprocess.Popen([sys.executable, str(TRAIN), *args], cwd=REPO, env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)  # its own process group
    sweep = sweep_dir(tmp_path, "k9")
    deadline = time.time() + 300
    try:
        while time.time() < deadline and driver.poll() is None:
            if any(len(e) >= 3 for e in _progress_epochs(sweep).values()) if (sweep / "ray").is_dir() else False:
                break
            time.sleep(0.2)
        assert driver.poll() is None, "the search ended before it could be killed"
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray processes it started
        driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    before = _progress_epochs(sweep)
    assert not (sweep / "best.yaml").exists() and any(len(e) < 15 for e in before.values())

    again = run_train(args, tmp_path, timeout=600)  # the same command
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Continuing the interrupted search" in again.stderr + again.stdout

    # One continuous history per trial: every epoch reported, in order, none restarted.
    after = _progress_epochs(sweep)
    assert len(after) == 3
    for name, epochs in after.items():
        assert sorted(set(epochs)) == list(range(1, 16)), (name, epochs)
        assert epochs[: len(before.get(name, []))] == before.get(name, []), name
    trials = trial_dirs(sweep)
    assert len(trials) == 3 and not list(sweep.glob("*.lost-*"))
    for trial in trials:
        record = summary(trial)
        assert record["status"] == "completed" and record["epochs_completed"] == 15
    best = yaml.safe_load((sweep / "best.yaml").read_text())
    scores = {t.name: summary(t)["checkpoints"]["best_score"] for t in trials}
    assert best["value"] == pytest.approx(max(scores.values()))
    assert Path(best["run_dir"]).name == max(scores, key=scores.get)
    client, children = mlflow_tree(tmp_path, "k9", 3)
    for child in children:  # every epoch's validation once, all 15 of them
        assert len(client.get_metric_history(child.info.run_id, "val/acc")) == 15


def test_an_unreachable_ray_cluster_is_one_sentence_and_fails_the_search_run(tmp_path):
    """Nothing before Ray can know whether a cluster answers at hydra.sweeper.address; when it
    does not, the user reads one sentence naming the key (not Ray's client traceback), and the
    search's MLflow run, created just before, ends FAILED with the cause instead of RUNNING."""
    from mlflow.tracking import MlflowClient

    proc = run_train([*SMALL, "model.lr=interval(0.001,0.1)", "hydra.sweeper.num_samples=2",
                      "hydra.sweeper.address=ray://127.0.0.1:1", "run_id=unreachable"], tmp_path, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "hydra.sweeper.address='ray://127.0.0.1:1' could not be reached" in errors[0], \
        proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (parent,) = client.search_runs([client.get_experiment_by_name("train").experiment_id])
    assert parent.data.tags.get("aegis.kind") == "search"
    assert parent.info.status == "FAILED"
    assert "could not be reached" in parent.data.tags["aegis.failures.record.cause"]
    assert parent.data.tags["aegis.failures.record.exception"] == "RayUnreachable"
