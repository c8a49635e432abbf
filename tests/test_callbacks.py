"""The ``callbacks`` group: user callbacks as config, checked before anything exists,
built after Aegis's own, which stay on whatever the group holds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from aegis.config.validation import validate
from aegis.errors import ConfigError
from aegis.launch.base import RunContext
from helpers import run_dirs, run_train

BAD = [
    (["callbacks=early_stopping", "+callbacks.early_stopping.patiense=2"],
     "callbacks.early_stopping.patiense is not an argument of lightning.pytorch.callbacks.EarlyStopping"),
    (["+callbacks.es._target_=lightning.pytorch.callbacks.EarlyStoping"],
     "callbacks.es._target_=lightning.pytorch.callbacks.EarlyStoping names EarlyStoping, which "
     "lightning.pytorch.callbacks does not define"),
    (["+callbacks.es._target_=no_such_pkg.Callback"], "names a module, no_such_pkg, that cannot be found"),
    (["+callbacks.es._target_=lightning.pytorch.callbacks.EarlyStopping"],
     "callbacks.es.monitor is required by lightning.pytorch.callbacks.EarlyStopping"),
    (["+callbacks.early_stopping.patience=2"], "callbacks.early_stopping has no _target_: expected callbacks=early_stopping"),
    (["callbacks=early_stopping", "callbacks.early_stopping.monitor=val/accuracy"],
     "callbacks.early_stopping.monitor=val/accuracy is not a metric MLPClassifier logs during training"),
    (["callbacks=lr_monitor", "logger=none"], "callbacks.lr_monitor (LearningRateMonitor) logs to the run's logger"),
    (["+callbacks.best._target_=lightning.pytorch.callbacks.ModelCheckpoint", "+callbacks.best.monitor=val/acc",
      "+callbacks.best.mode=max"], "same mode and schedule as Aegis's best checkpoint"),
]


@pytest.mark.parametrize("overrides,expected", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_callbacks_are_one_sentence(compose, overrides, expected):
    with pytest.raises(ConfigError) as caught:
        validate(compose(*overrides))
    message = str(caught.value)
    assert expected in message and message.count("\n") == 0 and message.endswith(".")


def test_a_bad_callback_key_exits_1_before_a_run_dir_exists(tmp_path):
    result = run_train(["callbacks=early_stopping", "+callbacks.early_stopping.patiense=2"], tmp_path, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("Error: callbacks.early_stopping.patiense is not")
    assert run_dirs(tmp_path) == []


def test_options_combine_and_a_dropped_one_is_gone(compose):
    cfg = compose("callbacks=[early_stopping,lr_monitor]", "callbacks.early_stopping.patience=5",
                  "callbacks.lr_monitor=null")
    validate(cfg)
    assert cfg.callbacks.early_stopping.patience == 5 and cfg.callbacks.lr_monitor is None
    assert cfg.callbacks.early_stopping.monitor == cfg.checkpoint.monitor  # watches what "best" watches


def test_early_stopping_stops_training_and_the_built_ins_still_checkpoint(compose, tmp_path, monkeypatch):
    """val/acc cannot rise by min_delta=1.0, so patience 0 stops after the second epoch of 5;
    last.ckpt (Aegis's LastCheckpoint) and the best checkpoint are written all the same."""
    pytest.importorskip("lightning")
    import torch

    from aegis.training.run import train

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = compose(f"paths.root={tmp_path}", "progress=none", "trainer=smoke", "trainer.max_epochs=5", "logger=csv",
                  "callbacks=[early_stopping,lr_monitor]", "callbacks.early_stopping.patience=0",
                  "callbacks.early_stopping.min_delta=1.0", "test_after_fit=false")
    validate(cfg)
    run_dir = tmp_path / "run"
    outcome = train(cfg, RunContext(run_dir=run_dir, run_id="run", task_overrides=(), config_name="train"))

    assert outcome.exit_code == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["epochs_completed"] == 2, "EarlyStopping did not stop training before trainer.max_epochs=5"
    last = Path(summary["checkpoints"]["last"])
    assert last == run_dir / "checkpoints" / "last.ckpt" and last.is_file()
    saved = torch.load(last, map_location="cpu", weights_only=False)
    assert saved["global_step"] == summary["global_step"] == 2 * 8  # the stopping epoch's end, 8 smoke batches each
    assert Path(summary["checkpoints"]["best"]).is_file()
    with open(run_dir / "csv" / "metrics.csv") as handle:
        rates = [row["lr-Adam"] for row in csv.DictReader(handle) if row.get("lr-Adam")]
    assert rates and float(rates[0]) == cfg.model.lr  # LearningRateMonitor ran alongside
