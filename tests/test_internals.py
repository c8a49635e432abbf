"""Private third-party names Aegis still uses (docs/internals.md): each degrades, never crashes.

Every test takes the private name away (or breaks it) and checks the feature falls back
to the documented behaviour.
"""

from __future__ import annotations

import logging
import os
import sys
from types import SimpleNamespace

import pytest


# ------------------------------------------------------------ tune/space.py: no private name left


@pytest.mark.parametrize("value", [1e-5, 0.00123, float("inf"), 3, True, False, None, "plain", "a b",
                                   "x\\y(1)=[a]{b}:c,d\te", [32, 16], [], {"a": 1, "b": [1, "q r"]}])
def test_format_value_round_trips_through_hydras_public_parser(value):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from aegis.tune.space import format_value

    parsed = OverridesParser.create().parse_override(f"k={format_value(value)}")
    assert not parsed.is_sweep_override() and parsed.value() == value


def test_format_value_takes_numpy_scalars():
    np = pytest.importorskip("numpy")
    from aegis.tune.space import format_value

    assert (format_value(np.float32(0.5)), format_value(np.int64(3))) == ("0.5", "3")


# ------------------------------------------------------------ cli.py: hydra._internal.utils


def test_override_precheck_is_skipped_when_hydras_parser_is_gone(monkeypatch):
    import hydra._internal.utils as hydra_utils

    from aegis.cli import check_overrides

    monkeypatch.delattr(hydra_utils, "get_args_parser")
    check_overrides(["model.lr=interval(1e-4,x)"])  # no exit: Hydra reports it itself later


def test_one_line_errors_is_a_no_op_when_run_and_report_is_gone(monkeypatch):
    import hydra._internal.utils as hydra_utils

    from aegis.cli import one_line_errors

    monkeypatch.delattr(hydra_utils, "run_and_report")
    with one_line_errors():
        pass
    assert not hasattr(hydra_utils, "run_and_report")


# ------------------------------------------------------------ config/compose_once.py: ConfigLoaderImpl


def _compose(monkeypatch, tmp_path, overrides):
    """Run a tiny @hydra.main app under compose_once; returns (loads, cfg seen by the task)."""
    import hydra
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.global_hydra import GlobalHydra

    from aegis.config.compose_once import compose_once

    (tmp_path / "app.yaml").write_text("x: 1\n")
    calls = []
    real = ConfigLoaderImpl.load_configuration

    def counting(self, *args, **kwargs):
        calls.append(kwargs.get("run_mode"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", counting)
    seen = {}

    @hydra.main(version_base=None, config_path=str(tmp_path), config_name="app")
    def app(cfg):
        seen["x"] = cfg.x

    monkeypatch.setattr(sys, "argv", ["app", f"hydra.run.dir={tmp_path / 'run'}", "hydra.output_subdir=null",
                                      "hydra/job_logging=none", "hydra/hydra_logging=none", *overrides])
    GlobalHydra.instance().clear()
    try:
        with compose_once():
            app()
    finally:
        GlobalHydra.instance().clear()
    return len(calls), seen


def test_compose_once_composes_once(monkeypatch, tmp_path):
    assert _compose(monkeypatch, tmp_path, ["x=2"]) == (1, {"x": 2})


def test_compose_once_composes_twice_when_a_private_helper_breaks(monkeypatch, tmp_path):
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    from aegis.config import compose_once

    def broken(*args, **kwargs):
        raise TypeError("signature changed")

    monkeypatch.setattr(compose_once, "_private_loader",
                        lambda: (ConfigLoaderImpl, broken, ConfigLoaderImpl.validate_sweep_overrides_legal))
    assert _compose(monkeypatch, tmp_path, ["x=3"]) == (2, {"x": 3})
    monkeypatch.setattr(compose_once, "_private_loader",
                        lambda: (ConfigLoaderImpl, ConfigLoaderImpl._apply_overrides_to_config, broken))
    assert _compose(monkeypatch, tmp_path, ["x=4"]) == (2, {"x": 4})


def test_compose_once_leaves_hydra_alone_when_the_loader_is_gone(monkeypatch, tmp_path):
    import hydra._internal.config_loader_impl as impl

    from aegis.config import compose_once

    real = impl.ConfigLoaderImpl.load_configuration
    monkeypatch.setattr(compose_once, "_private_loader", lambda: impl.NoSuchLoader)
    assert _compose(monkeypatch, tmp_path, ["x=5"]) == (2, {"x": 5})
    monkeypatch.delattr(impl, "ConfigLoaderImpl")
    with compose_once.compose_once():
        pass
    monkeypatch.undo()
    assert impl.ConfigLoaderImpl.load_configuration is real


# ------------------------------------------------------------ config/sweep.py: BasicSweeper


def test_sweep_jobs_are_checked_as_they_start_when_basic_sweeper_is_gone(monkeypatch):
    import hydra._internal.core_plugins.basic_sweeper as basic_sweeper
    from omegaconf import OmegaConf

    from aegis.config.sweep import BASIC_SWEEPER, sweep_jobs

    config = OmegaConf.create({"hydra": {"sweeper": {"_target_": BASIC_SWEEPER, "params": None},
                                         "overrides": {"task": ["model.lr=1e-3,2e-3"]}}})
    assert sweep_jobs(config) == [["model.lr=0.001"], ["model.lr=0.002"]]
    monkeypatch.delattr(basic_sweeper.BasicSweeper, "split_arguments")
    assert sweep_jobs(config) is None


def test_interpolation_check_uses_public_omegaconf():
    from omegaconf import OmegaConf

    from aegis.config.rules.values import is_interpolation

    node = OmegaConf.create({"a": 1, "b": "${a}", "l": [1, "${a}"], "m": [1, 2], "q": "???", "n": None})
    assert [k for k in "ablmqnz" if is_interpolation(node, k)] == ["b", "l"]


# ------------------------------------------------------------ launch/slurm.py: submitit renderer


def test_render_sbatch_is_one_sentence_when_submitits_renderer_is_gone(monkeypatch, tmp_path):
    pytest.importorskip("submitit")
    (tmp_path / "srun").write_text("#!/bin/sh\nexit 0\n")  # submitit's SLURM executor wants srun on PATH
    (tmp_path / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from submitit.slurm.slurm import SlurmExecutor

    from aegis.errors import ConfigError
    from aegis.launch.slurm.submitit import render_sbatch

    monkeypatch.delattr(SlurmExecutor, "_make_submission_file_text")
    with pytest.raises(ConfigError, match="cannot render the sbatch script"):
        render_sbatch({"nodes": 1, "tasks_per_node": 1, "timeout_min": 5}, tmp_path)


# ------------------------------------------------------------ training: Lightning internals


def test_request_stop_raises_lightnings_sigterm_flag():
    pytest.importorskip("lightning")
    from aegis.training.callbacks import request_stop

    trainer = SimpleNamespace(_signal_connector=SimpleNamespace(received_sigterm=False), should_stop=False)
    request_stop(trainer)
    assert trainer._signal_connector.received_sigterm and not trainer.should_stop


@pytest.mark.parametrize("trainer", [SimpleNamespace(should_stop=False),
                                     SimpleNamespace(_signal_connector=SimpleNamespace(), should_stop=False)])
def test_request_stop_falls_back_to_should_stop(trainer, caplog):
    pytest.importorskip("lightning")
    from aegis.training.callbacks import request_stop

    with caplog.at_level(logging.WARNING, logger="aegis.training"):
        request_stop(trainer)
    assert trainer.should_stop and "stopping at the next step" in caplog.text


def test_resumed_csv_logger_keeps_earlier_rows(tmp_path):
    pytest.importorskip("lightning")
    from aegis.training.tracking import ResumableCSVLogger

    first = ResumableCSVLogger(tmp_path, name="", version="")
    first.log_metrics({"loss": 1.0}, step=0)
    first.save()
    second = ResumableCSVLogger(tmp_path, name="", version="")
    assert second.experiment is second.experiment  # the writer is made once
    second.log_metrics({"loss": 0.5}, step=1)
    second.save()
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[0].split(",") == ["loss", "step"] and len(rows) == 3


@pytest.mark.parametrize("private", ["_get_latest_schema_revision", "_initialize_tables"])
def test_the_embedded_store_is_prepared_through_mlflows_client_when_its_private_helpers_move(
        tmp_path, monkeypatch, private):
    from mlflow.tracking import MlflowClient

    from aegis.training import mlflow_store

    real = mlflow_store._private

    def moved(name):
        if name == private:
            raise AttributeError(f"module 'mlflow.store.db.utils' has no attribute {name!r}")
        return real(name)

    monkeypatch.setattr(mlflow_store, "_private", moved)
    mlflow_store.head_revision.cache_clear()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    try:
        mlflow_store.prepare_store(uri)
    finally:
        mlflow_store.head_revision.cache_clear()
    client = MlflowClient(tracking_uri=uri)
    assert client.create_run(client.create_experiment("e")).info.run_id


def test_without_lightnings_logging_test_every_training_step_logs():
    from aegis.training.epoch_metrics import logs_this_step

    assert logs_this_step(SimpleNamespace()) is True
    connector = SimpleNamespace(should_update_logs=False)
    assert logs_this_step(SimpleNamespace(_logger_connector=connector, fast_dev_run=False)) is False
    assert logs_this_step(SimpleNamespace(_logger_connector=connector, fast_dev_run=1)) is True
