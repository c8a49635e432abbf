"""Composing and validating configs: fast, and never imports torch or lightning.

Bad input is checked in-process here (and case by case in tests/test_bad_overrides.py);
the same cases through ``python train.py`` are in the slow tier. The import check runs
every config-only path in one fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from omegaconf import OmegaConf

from aegis.config.hydra_errors import sentence
from aegis.config.validation import validate
from aegis.errors import ConfigError
from helpers import REPO, TRAIN, run_train


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


@pytest.mark.slow  # in-process: test_bad_input_is_one_sentence_in_process
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


@pytest.mark.slow  # in-process: test_bad_input_is_one_sentence_in_process
@pytest.mark.parametrize("overrides,expected", HYDRA_ERRORS, ids=[" ".join(o) for o, _ in HYDRA_ERRORS])
def test_wrong_types_and_unknown_keys_are_refused_while_composing(tmp_path, overrides, expected):
    result = run_train(overrides, tmp_path)
    assert result.returncode == 1
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert expected in lines[0] and "Traceback" not in result.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("overrides,expected", BAD_INPUTS + HYDRA_ERRORS,
                         ids=[" ".join(o) for o, _ in BAD_INPUTS + HYDRA_ERRORS])
def test_bad_input_is_one_sentence_in_process(compose, tmp_path, monkeypatch, overrides, expected):
    """What train.py prints after ``Error: ``: Hydra's composition error rewritten, or validation's."""
    root = tmp_path / "root"
    monkeypatch.setenv("AEGIS_OUTPUT_ROOT", str(root))
    try:
        cfg = compose(*overrides)
    except Exception as exc:  # Hydra's composition errors
        message = sentence(exc)
        assert message is not None, f"not rewritten: {exc!r}"
    else:
        with pytest.raises(ConfigError) as info:
            validate(cfg)
        message = str(info.value)
    assert "\n" not in message and expected in message, message
    assert not root.exists(), "validation must not create anything"


def test_validation_also_rejects_bad_values_in_process(compose):
    with pytest.raises(ConfigError, match=r"launcher.nproc_per_node=0 is invalid: expected a number >= 1"):
        validate(compose("launcher=torchrun", "strategy=ddp", "launcher.nproc_per_node=0"))


# Every path train.py takes without training, run as ``python train.py ARGS`` runs them
# (its ``__main__``), one after another in one fresh interpreter (so nothing this test
# process imported counts), each followed by a look at sys.modules: the first path that
# imports a heavy module is named. Every refusal must also be one ``Error:`` line, exit 1.
CONFIG_ONLY_PATHS = {  # args: what the one Error line names (None: --cfg job, which prints the config)
    ("--cfg", "job", "model=cnn"): None,
    ("trainer.max_epochs=-1",): "trainer.max_epochs=-1",
    ("+model.hiden=3",): "model.hiden",
    ("model.lr=inf",): "model.lr=inf",
    ("checkpoint.monitor=val/nonexistent",): "checkpoint.monitor=val/nonexistent",
    ("resume=/etc/hostname",): "resume=/etc/hostname",
    ("logger.tracking_uri=::notauri",): "logger.tracking_uri=::notauri",
    ("seeed=1",): "seeed",
    ("model.lr=interval(1e-4,x)",): "model.lr=interval(1e-4,x) is not a valid override",
    ("-m", "model.lr=1e-3,inf"): "model.lr=inf",
    ("-m", "trainer.max_epochs=1,abc"): "trainer.max_epochs=abc",
    ("-m", "model=mlp,transformer"): "model=transformer",
}
HEAVY = ("torch", "lightning", "mlflow")

_PATHS_SCRIPT = textwrap.dedent("""
    import contextlib, io, json, runpy, sys
    from hydra.core.global_hydra import GlobalHydra

    train, paths, heavy = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
    report = []
    for args in paths:
        sys.argv = [train, *args]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(train, run_name="__main__")
                code = 0
            except SystemExit as exc:
                code = exc.code
        GlobalHydra.instance().clear()
        report.append({"args": args, "exit": code, "stdout": out.getvalue()[-20000:], "stderr": err.getvalue()[-3000:],
                       "heavy": sorted(m for m in heavy if m in sys.modules), "hydra": "hydra" in sys.modules})
    print(json.dumps(report))
""")


def test_config_only_paths_never_import_torch_lightning_or_mlflow(tmp_path):
    env = {**os.environ, "AEGIS_OUTPUT_ROOT": str(tmp_path / "out")}
    proc = subprocess.run([sys.executable, "-c", _PATHS_SCRIPT, str(TRAIN), json.dumps(list(CONFIG_ONLY_PATHS)),
                           json.dumps(HEAVY)], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [tuple(r["args"]) for r in report] == list(CONFIG_ONLY_PATHS)
    for r in report:  # the path ran as train.py runs it: --cfg job prints the config, the others refuse
        assert r["hydra"], r
        expected = CONFIG_ONLY_PATHS[tuple(r["args"])]
        if expected is None:
            assert r["exit"] == 0, r
            printed = OmegaConf.create(r["stdout"])
            assert printed.model.name == "cnn" and printed.launcher.name == "local"
        else:
            lines = [line for line in r["stderr"].splitlines() if line.strip()]
            assert r["exit"] == 1 and len(lines) == 1 and lines[0].startswith("Error: "), r
            assert expected in lines[0] and "Traceback" not in r["stderr"], r
        assert r["heavy"] == [], f"python train.py {' '.join(r['args'])} imported {r['heavy']}"
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # in the default tier through train.py's __main__: test_config_only_paths_never_import_...
def test_cfg_job_prints_the_composed_config(tmp_path):
    result = run_train(["--cfg", "job", "model=cnn"], tmp_path)
    assert result.returncode == 0
    printed = OmegaConf.create(result.stdout)
    assert printed.model.name == "cnn" and printed.launcher.name == "local"
