"""The sweeper from the command line, without starting Ray: composition, import cost, errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import REPO, TRAIN, run_train


def test_launcher_ray_tune_turns_on_multirun_and_the_sweeper(compose):
    cfg = compose("launcher=ray-tune", hydra_config=True)
    assert cfg.launcher.name == "ray-tune"
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.aegis_ray_tune.ray_tune_sweeper.RayTuneSweeper"
    assert cfg.hydra.sweeper.metric == "val/acc" and cfg.hydra.sweeper.mode == "max"

    plain = compose("hydra/sweeper=ray_tune", "hydra.sweeper.scheduler.name=asha", hydra_config=True)
    assert plain.launcher.name == "local" and plain.hydra.sweeper.scheduler.name == "asha"


def test_composing_a_search_never_imports_torch_lightning_or_ray(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(TRAIN), "launcher=ray-tune", "--cfg", "job"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    heavy = [line for line in proc.stderr.splitlines() if line.rstrip().endswith((" torch", " lightning", " ray"))]
    assert heavy == []
    assert "name: ray-tune" in proc.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["model.lr=interval(0.1,0.01)"], "Error: model.lr=interval(0.1,0.01) is not a valid search space"),
        (["model.lr=interval(1e-4,x)"], "Error: model.lr=interval(1e-4,x) is not a valid override"),
        (["model.lrr=interval(0.1,0.2)"], "Error: A trial of this search does not compose: Could not override 'model.lrr'"),
        (["model.lr=interval(-1,1)"], "Error: model.lr=-1.0 is invalid: expected a number > 0."),
        (["model.lr=1,2", "hydra.sweeper.scheduler.name=pbt"], "Error: hydra.sweeper.scheduler.name='pbt' is invalid"),
        (["model.lr=1,2", "hydra.sweeper.resume=true"], "Error: hydra.sweeper.resume=true but no search ran in"),
        (["trainer=smoke"], "Error: The search has nothing to search"),
    ],
)
def test_a_bad_search_fails_in_one_sentence_before_anything_is_created(tmp_path, args, message):
    proc = run_train(["launcher=ray-tune", *args], tmp_path, timeout=120)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), proc.stderr
    assert list(tmp_path.iterdir()) == []
