"""Loggers as ``_target_`` config: any Lightning logger by class (``logger=lightning``),
checked against its class before anything runs, built with the run dir as its save_dir."""

from __future__ import annotations

import csv
import json

import pytest

from aegis.config.validation import validate
from aegis.core import logger_kind
from aegis.errors import ConfigError
from aegis.launch.base import RunContext
from helpers import run_dirs, run_train

BAD = [
    (["logger=lightning", "+logger.flush_logs_every_n_step=10"],
     "logger.flush_logs_every_n_step is not an argument of lightning.pytorch.loggers.CSVLogger (did you mean "
     "logger.flush_logs_every_n_steps?): it accepts save_dir, name, version, prefix, flush_logs_every_n_steps."),
    (["logger=lightning", "logger._target_=lightning.pytorch.callbacks.EarlyStopping"],
     "logger._target_=lightning.pytorch.callbacks.EarlyStopping is a class but not a Lightning logger (a subclass "
     "of lightning.pytorch.loggers.Logger): expected the import path of a class, e.g. "
     "lightning.pytorch.loggers.CSVLogger."),
    (["logger=lightning", "logger._target_=lightning.pytorch.loggers.CSVLoger"],
     "logger._target_=lightning.pytorch.loggers.CSVLoger names CSVLoger, which lightning.pytorch.loggers does not "
     "define"),
    # on logger=mlflow: its schema refuses the key, once, not each MLflow key as an argument of CSVLogger
    (["+logger._target_=lightning.pytorch.loggers.CSVLogger"],
     "logger._target_ is not a key of logger: expected one of name, tracking_uri,"),
]


@pytest.mark.parametrize("overrides,expected", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_a_bad_logger_by_class_is_one_sentence(compose, overrides, expected):
    with pytest.raises(ConfigError) as caught:
        validate(compose(*overrides))
    message = str(caught.value)
    assert expected in message and message.count("\n") == 0 and message.endswith(".")


def test_a_logger_by_class_validates_without_importing_lightning():
    """save_dir is CSVLogger's required argument: Aegis fills it, so leaving it out is valid."""
    import subprocess
    import sys

    code = ("import sys; from hydra import compose, initialize_config_dir; from aegis.config.validation import validate\n"
            "from aegis.cli import prepare; prepare()\n"
            "with initialize_config_dir(config_dir=sys.argv[1], version_base=None):\n"
            "    validate(compose('train', overrides=['logger=lightning', '+logger.flush_logs_every_n_steps=5']))\n"
            "assert 'lightning' not in sys.modules and 'torch' not in sys.modules, 'validation imported torch'\n")
    from helpers import REPO

    result = subprocess.run([sys.executable, "-c", code, str(REPO / "conf")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_kind_of_each_shipped_option():
    assert logger_kind.of({"name": "mlflow"}).mlflow and logger_kind.of({"name": "mlflow"}).logs
    assert not logger_kind.of({"name": "csv"}).mlflow and logger_kind.of({"name": "csv"}).logs
    assert not logger_kind.of({"name": "none"}).logs and not logger_kind.of(None).logs
    by_class = logger_kind.of({"_target_": "lightning.pytorch.loggers.MLFlowLogger", "name": "mlflow"})
    assert by_class.target and by_class.logs and not by_class.mlflow  # Aegis's MLflow layer is logger=mlflow's


def test_lr_monitor_runs_with_a_logger_by_class(compose):
    validate(compose("logger=lightning", "callbacks=lr_monitor"))  # it has a logger: no "logger=none" sentence


@pytest.mark.slow  # in-process: BAD's first case (the same sentence, before anything runs)
def test_a_bad_logger_arg_exits_1_before_a_run_dir_exists(tmp_path):
    result = run_train(["logger=lightning", "+logger.flush_logs_every_n_step=10"], tmp_path, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("Error: logger.flush_logs_every_n_step is not")
    assert run_dirs(tmp_path) == []


def test_a_csv_logger_by_class_writes_its_metrics_in_the_run_dir(compose, tmp_path, monkeypatch):
    pytest.importorskip("lightning")
    from aegis.training.run import train

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = compose(f"paths.root={tmp_path}", "progress=none", "trainer=smoke", "logger=lightning",
                  "+logger.name=by_class", "test_after_fit=false")
    validate(cfg)
    run_dir = tmp_path / "run"
    outcome = train(cfg, RunContext(run_dir=run_dir, run_id="run", task_overrides=(), config_name="train"))

    assert outcome.exit_code == 0
    metrics = run_dir / "by_class" / "version_0" / "metrics.csv"
    with open(metrics) as handle:
        rows = list(csv.DictReader(handle))
    assert any(row.get("val/acc") for row in rows), rows[:3]
    assert (run_dir / "by_class" / "version_0" / "hparams.yaml").is_file()  # the config, as the class logs it
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["tracking"] == {"logger": "lightning.pytorch.loggers.CSVLogger", "log_dir": str(metrics.parent)}
    assert not (tmp_path / "mlflow.db").exists()  # no MLflow store prepared for it
