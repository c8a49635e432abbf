"""Composing and validating configs: fast, and never imports torch or lightning."""

from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from aegis.config.validation import validate
from aegis.errors import ConfigError
from helpers import REPO, TRAIN, run_dirs, run_train


def test_default_config_composes_every_group(compose):
    cfg = compose()
    assert cfg.data.name == "digits"
    assert cfg.model._target_ == "aegis.training.models.MLPClassifier"
    assert list(cfg.model.input_shape) == [1, 8, 8] and cfg.model.num_classes == 10
    assert (cfg.strategy.name, cfg.launcher.name, cfg.logger.name) == ("single", "local", "mlflow")
    validate(cfg)


@pytest.mark.parametrize(
    "overrides",
    [
        ["data=synthetic", "data.num_features=32"],
        ["model=cnn"],
        ["experiment=digits_cnn"],
        ["experiment=synthetic_ddp"],
        ["debug=fdr"],
        ["debug=overfit"],
        ["debug=limit"],
        ["trainer=smoke", "logger=csv"],
        ["logger=none"],
        ["strategy=ddp", "launcher=torchrun", "launcher.nproc_per_node=4"],
    ],
)
def test_every_option_composes_and_validates(compose, overrides):
    validate(compose(*overrides))


def test_synthetic_data_shapes_flow_into_the_model(compose):
    cfg = compose("data=synthetic", "data.num_features=48", "data.num_classes=3")
    assert list(cfg.model.input_shape) == [48] and cfg.model.num_classes == 3


# Each class of bad input: (overrides, words the one-sentence message must contain).
BAD_INPUTS = [
    (["launcher=torchrun", "strategy=ddp", "launcher.nproc_per_node=0"], "launcher.nproc_per_node=0"),
    (["trainer.max_epochs=-1"], "trainer.max_epochs=-1"),
    (["data.val_fraction=1.5"], "data.val_fraction=1.5"),
    (["data.val_fraction=0.5", "data.test_fraction=0.5"], "data.test_fraction"),
    (["model.lr=0"], "model.lr=0"),
    (["trainer.precision=fp8"], "trainer.precision"),
    (["trainer.limit_train_batches=1.5"], "trainer.limit_train_batches"),
    (["+model.hiden=3"], "model.hiden"),
    (["+data.foo=1"], "data.foo"),
    (["model=cnn", "data=synthetic"], "model=cnn"),
    (["launcher=torchrun"], "strategy=ddp"),
    (["launcher=torchrun", "strategy=ddp", "launcher.nnodes=2", "launcher.node_rank=2",
      "launcher.master_port=29400"], "launcher.node_rank=2"),
    (["launcher=torchrun", "strategy=ddp", "launcher.nnodes=2"], "launcher.master_port"),
    (["launcher=torchrun", "strategy=ddp", "launcher.master_port=70000"], "launcher.master_port=70000"),
    (["resume=/no/such/file.ckpt"], "resume=/no/such/file.ckpt"),
]


@pytest.mark.parametrize("overrides,expected", BAD_INPUTS, ids=[" ".join(o) for o, _ in BAD_INPUTS])
def test_bad_values_fail_in_one_sentence_before_anything_is_created(tmp_path, overrides, expected):
    result = run_train(overrides, tmp_path)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    assert not any(tmp_path.iterdir()), "a rejected config must not create a run dir"


# Wrong types and unknown keys are Hydra's own composition errors; they name the key too.
HYDRA_ERRORS = [
    (["trainer.max_epochs=abc"], "trainer.max_epochs"),
    (["model.hiden=3"], "model.hiden"),
    (["progress=fancy"], "progress"),
    (["seeed=1"], "seeed"),
    (["model=transformer"], "model"),
]


@pytest.mark.parametrize("overrides,expected", HYDRA_ERRORS, ids=[" ".join(o) for o, _ in HYDRA_ERRORS])
def test_wrong_types_and_unknown_keys_are_refused_while_composing(tmp_path, overrides, expected):
    result = run_train(overrides, tmp_path)
    assert result.returncode == 1
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert expected in lines[0] and "Traceback" not in result.stderr
    assert not any(tmp_path.iterdir())


def test_validation_also_rejects_bad_values_in_process(compose):
    with pytest.raises(ConfigError, match=r"launcher.nproc_per_node=0 is invalid: expected a number >= 1"):
        validate(compose("launcher=torchrun", "strategy=ddp", "launcher.nproc_per_node=0"))


def _imported_modules(args: list[str]) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(TRAIN), *args],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    return {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}


@pytest.mark.parametrize("args", [["--cfg", "job"], ["trainer.max_epochs=-1"], ["+model.hiden=3"], ["model.lr=inf"],
                                  ["checkpoint.monitor=val/nonexistent"], ["resume=/etc/hostname"],
                                  ["logger.tracking_uri=::notauri"], ["seeed=1"]])
def test_config_only_paths_never_import_torch_or_lightning(args):
    modules = _imported_modules(args)
    assert "hydra" in modules  # the measurement itself works
    assert not {"torch", "lightning", "mlflow"} & modules


def test_cfg_job_prints_the_composed_config(tmp_path):
    result = run_train(["--cfg", "job", "model=cnn"], tmp_path)
    assert result.returncode == 0
    printed = OmegaConf.create(result.stdout)
    assert printed.model.name == "cnn" and printed.launcher.name == "local"
