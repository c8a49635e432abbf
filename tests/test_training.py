"""Training in-process on tiny configs: checkpoints, metrics, resume, tracking."""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import pytest

from aegis.launch.base import RunContext

pytest.importorskip("lightning")
# New MLflow stores are copies of a fresh one (tests/conftest.py): their creation is not the subject here.
pytestmark = pytest.mark.usefixtures("store_from_template")


@pytest.fixture()
def train_run(compose, tmp_path, monkeypatch):
    """Train with overrides in this process; returns (outcome, run_dir)."""
    from aegis.training.run import train

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def _train(*overrides: str, run_dir: Path | None = None):
        cfg = compose(f"paths.root={tmp_path}", "progress=none", *overrides)
        run_dir = run_dir or tmp_path / "run"
        ctx = RunContext(run_dir=run_dir, run_id=run_dir.name, task_overrides=overrides, config_name="train")
        return train(cfg, ctx), run_dir

    return _train


def _metric_rows(run_dir: Path, name: str) -> list[float]:
    with open(run_dir / "csv" / "metrics.csv") as handle:
        return [float(row[name]) for row in csv.DictReader(handle) if row.get(name)]


def test_smoke_training_writes_a_loadable_checkpoint_and_improves(train_run):
    from aegis.training.models import MLPClassifier

    outcome, run_dir = train_run("trainer=smoke", "logger=csv", "trainer.max_epochs=3")
    assert outcome.exit_code == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["world_size"] == 1
    assert summary["epochs_completed"] == 3 and summary["global_step"] == 24
    assert 0.0 <= summary["metrics"]["test/acc"] <= 1.0

    val_loss = _metric_rows(run_dir, "val/loss")
    assert len(val_loss) == 3 and val_loss[-1] < val_loss[0]

    for key in ("last", "best"):
        path = Path(summary["checkpoints"][key])
        assert path.is_file()
        model = MLPClassifier.load_from_checkpoint(path, map_location="cpu")
        assert model.hparams.hidden_dims == [256, 128]
    assert (run_dir / "config.yaml").is_file()


def test_resume_continues_from_the_saved_epoch(train_run):
    import torch

    first, run_dir = train_run("trainer=smoke", "logger=csv", "trainer.max_epochs=2")
    last = run_dir / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["epoch"] == 1

    second, _ = train_run("trainer=smoke", "logger=csv", "trainer.max_epochs=4", run_dir=run_dir)
    summary = second.summary
    assert summary["resumed_from"] == str(last)
    assert summary["epochs_completed"] == 4
    assert summary["global_step"] == 4 * 8  # continued: 2 epochs from the first run, 2 more
    assert summary["timing"]["train_steps"] == 2 * 8
    cpu = summary["timing"]["train_cpu_seconds"]  # what bench/step_rate.py compares on a busy machine
    # The rate is of the unrounded CPU time, the seconds recorded rounded to 0.1 ms: equal within that.
    assert 0 < cpu and summary["timing"]["train_steps_per_cpu_s"] == pytest.approx(2 * 8 / cpu, rel=1e-3)
    assert len(_metric_rows(run_dir, "val/loss")) == 4  # metrics.csv kept the first attempt's rows


def test_resume_never_starts_over_and_an_explicit_checkpoint_is_used(train_run, tmp_path):
    _, run_dir = train_run("trainer=smoke", "logger=none", "trainer.max_epochs=1")
    fresh, _ = train_run("trainer=smoke", "logger=none", "trainer.max_epochs=1", "resume=never", run_dir=run_dir)
    assert fresh.summary["resumed_from"] is None and fresh.summary["timing"]["train_steps"] == 8

    saved = tmp_path / "kept.ckpt"
    saved.write_bytes((run_dir / "checkpoints" / "last.ckpt").read_bytes())
    explicit, _ = train_run("trainer=smoke", "logger=none", "trainer.max_epochs=2", f"resume={saved}",
                            run_dir=tmp_path / "other")
    assert explicit.summary["resumed_from"] == str(saved)
    assert explicit.summary["timing"]["train_steps"] == 8  # only the second epoch ran


def test_checkpoint_writes_are_atomic(tmp_path):
    import torch

    from aegis.training.checkpoints import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    target = tmp_path / "last.ckpt"
    io.save_checkpoint({"epoch": 1, "weights": torch.ones(1000)}, target)

    class ExplodesMidWrite:
        def __reduce__(self):
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed mid-write"):
        io.save_checkpoint({"epoch": 2, "weights": torch.ones(1000), "bomb": ExplodesMidWrite()}, target)
    assert torch.load(target, weights_only=True)["epoch"] == 1  # the previous file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temp file left behind


def test_mlflow_tracks_params_metrics_checkpoint_and_registers_the_model(train_run, tmp_path):
    from mlflow.tracking import MlflowClient

    outcome, run_dir = train_run("trainer=smoke", "trainer.max_epochs=2", "logger.registered_model_name=digits-mlp")
    tracking = outcome.summary["tracking"]
    assert tracking["tracking_uri"] == f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=tracking["tracking_uri"])
    run = client.get_run(tracking["run_id"])
    assert run.data.params["model.lr"] == "0.001" and run.data.params["data.name"] == "digits"
    assert run.data.tags["aegis.run_id"] == "run"
    assert len(client.get_metric_history(run.info.run_id, "val/acc")) == 2
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")]
    assert artifacts == [f"checkpoints/{Path(outcome.summary['checkpoints']['best']).name}"]
    version = client.get_model_version("digits-mlp", str(tracking["registered_model"]["version"]))
    assert version.run_id == run.info.run_id

    import mlflow.pytorch
    import torch

    model = mlflow.pytorch.load_model(f"models:/digits-mlp/{version.version}")
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)

    resumed, _ = train_run("trainer=smoke", "trainer.max_epochs=3", "logger.register_model=false", run_dir=run_dir)
    assert resumed.summary["tracking"]["run_id"] == run.info.run_id  # the same MLflow run continues
    assert resumed.summary["tracking"]["continued_run"] is True
    assert len(client.get_metric_history(run.info.run_id, "val/acc")) == 3


def test_tracking_uri_comes_from_the_environment_when_not_configured(train_run, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    outcome, _ = train_run("trainer=smoke", "trainer.max_epochs=1", "logger.register_model=false")
    assert outcome.summary["tracking"]["tracking_uri"] == uri


def test_fast_dev_run_debug_config_runs_one_batch(train_run):
    outcome, _ = train_run("debug=fdr")
    assert outcome.exit_code == 0 and outcome.summary["global_step"] == 1


def test_custom_model_keys_are_checked_against_its_signature(train_run):
    from aegis.errors import ConfigError

    with pytest.raises(ConfigError, match=r"model does not fit .*MLPClassifier.*unexpected keyword argument 'depth'"):
        train_run("trainer=smoke", "logger=none", "+model.depth=3")


def test_progress_is_a_bar_on_a_terminal_and_epoch_lines_otherwise(train_run, tmp_path, capsys, caplog, monkeypatch):
    """``progress=auto``: Lightning's bar when stdout is a terminal, one log line per epoch
    otherwise (pod logs, CI). (A real terminal, a pty, and ``python train.py``: the slow
    tier's tests/test_cli.py.)"""
    import logging
    import sys

    seen = {}
    for terminal in (True, False):
        capsys.readouterr()
        caplog.clear()
        monkeypatch.setattr(sys.stdout, "isatty", lambda: terminal)
        with caplog.at_level(logging.INFO):
            outcome, _ = train_run("trainer=smoke", "logger=none", "progress=auto",
                                   run_dir=tmp_path / ("terminal" if terminal else "pipe"))
        assert outcome.exit_code == 0
        out, err = capsys.readouterr()
        seen[terminal] = (out + err, [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")])
    bar, lines = seen[True]
    assert "Epoch 1:" in bar and "it/s" in bar
    assert lines == []
    bar, lines = seen[False]
    assert "it/s" not in bar and "Epoch 1:" not in bar
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
