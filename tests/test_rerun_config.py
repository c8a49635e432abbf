"""A run_id holding a run of another config is refused; the same config still resumes (issue 22 #7).

A second ``run_id=exp`` with a different config silently resumed the first (its weights,
epochs and MLflow params). ``aegis.config.rerun`` compares the config with the run dir's
``.hydra/config.yaml`` before anything is written.
"""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from aegis.config.validation import problems
from helpers import run_train


@pytest.fixture
def ran(compose, tmp_path, monkeypatch):
    """A run dir as a first run of run_id=exp leaves it (its recorded config, a summary), and
    the overrides that compose a second run into it."""
    monkeypatch.setenv("AEGIS_OUTPUT_ROOT", str(tmp_path / "root"))
    for name in ("TORCHELASTIC_RUN_ID", "SLURM_JOB_ID", "SLURM_NTASKS", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(name, raising=False)
    run_dir = tmp_path / "root" / "train" / "runs" / "exp"
    (run_dir / ".hydra").mkdir(parents=True)
    first = compose("run_id=exp", "trainer=smoke", "fault=exit")
    OmegaConf.save(first, run_dir / ".hydra" / "config.yaml")
    (run_dir / "summary.json").write_text(json.dumps({"attempts": []}))
    return run_dir, ["run_id=exp", "trainer=smoke"]


def _sentences(compose, *overrides):
    return problems(compose(*overrides, hydra_config=True)).sentences


def test_a_different_config_under_the_same_run_id_is_refused_naming_the_keys(compose, ran):
    run_dir, same = ran
    sentences = _sentences(compose, *same, "model.lr=0.01", "data.batch_size=32")
    assert len(sentences) == 1, sentences
    assert sentences[0].startswith(f"run_id=exp already holds a run ({run_dir}) whose config differs in "
                                   "data.batch_size (64 there, 32 now), model.lr (0.001 there, 0.01 now)"), sentences
    assert "resume=auto on the command line" in sentences[0] and "a new run_id" in sentences[0]
    assert sorted(p.name for p in run_dir.iterdir()) == [".hydra", "summary.json"], "nothing written"


@pytest.mark.parametrize("extra", [
    [],  # the same config: resumes silently (a rerun after kill -9)
    ["trainer.max_epochs=5"],  # training for longer is what resuming is for
    ["fault=none"],  # the first attempt's injected failure is not the next one's
    ["model.lr=0.01", "resume=auto"],  # told to continue anyway
    ["model.lr=0.01", "resume=never"],  # not resuming
    ["launcher=torchrun", "strategy=ddp", "launcher.nproc_per_node=1"],  # where it runs may change
    ["logger.register_model=false", "logger.system_metrics=true"],  # how it reports may change
    ["logger=csv"],
], ids=["same", "max_epochs", "fault", "explicit-auto", "never", "launcher", "logger-options", "logger"])
def test_what_may_change_between_attempts_resumes(compose, ran, extra):
    _, same = ran
    sentences = _sentences(compose, *same, *extra)
    assert not any("already holds a run" in s for s in sentences), sentences


def test_a_run_dir_that_never_trained_is_not_compared(compose, ran):
    run_dir, same = ran
    (run_dir / "summary.json").unlink()
    assert _sentences(compose, *same, "model.lr=0.01") == []


@pytest.mark.slow
def test_a_second_run_of_another_config_is_refused_through_train_py(tmp_path):
    root = tmp_path / "root"
    first = run_train(["run_id=exp", "trainer=smoke", "logger=none"], root)
    assert first.returncode == 0, first.stderr
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    second = run_train(["run_id=exp", "trainer=smoke", "logger=none", "model.lr=0.01"], root)
    assert second.returncode == 1 and "run_id=exp already holds a run" in second.stderr, second.stderr
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    third = run_train(["run_id=exp", "trainer=smoke", "logger=none", "trainer.max_epochs=3"], root)
    assert third.returncode == 0 and "Resuming from" in third.stderr + third.stdout, third.stderr


@pytest.mark.slow
def test_a_rerun_after_kill_9_with_the_same_config_still_resumes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from helpers import REPO, TRAIN

    root = tmp_path / "root"
    args = ["run_id=k9", "data=synthetic", "data.num_samples=20000", "trainer.max_epochs=3", "logger=none"]
    env = {**os.environ, "AEGIS_OUTPUT_ROOT": str(root), "PYTHONUNBUFFERED": "1"}
    log_path = tmp_path / "first.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, str(TRAIN), *args], cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        deadline = time.time() + 180
        # The first epoch's checkpoint is on disk (its log line comes before the write ends: a
        # kill between the two left nothing to resume from, and this test failed under CI load).
        last = root / "train" / "runs" / "k9" / "checkpoints" / "last.ckpt"
        while "epoch 1/3" not in log_path.read_text() or not last.is_file():
            assert proc.poll() is None and time.time() < deadline, log_path.read_text()[-2000:]
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    result = run_train(args, root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "already holds a run" not in result.stderr
    assert "Resuming from" in result.stdout + result.stderr
