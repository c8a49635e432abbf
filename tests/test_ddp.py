"""DDP gangs of two processes on this machine (slow tier: `pytest -m slow`)."""

from __future__ import annotations

import sys

import pytest

from helpers import TRAIN, run_dirs, run_train, summary

pytestmark = pytest.mark.slow

GANG = ["strategy=ddp", "trainer=smoke", "trainer.accelerator=cpu"]


def test_torchrun_launcher_runs_one_gang_in_one_run_dir_with_one_tracking_run(tmp_path):
    from mlflow.tracking import MlflowClient

    result = run_train([*GANG, "launcher=torchrun", "launcher.nproc_per_node=2"], tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    [run_dir] = run_dirs(tmp_path)
    record = summary(run_dir)
    assert record["world_size"] == 2 and record["devices_per_node"] == 2
    assert record["status"] == "completed"
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "train.rank1.log").is_file()  # each rank logs, only rank 0 writes the record
    client = MlflowClient(tracking_uri=record["tracking"]["tracking_uri"])
    [experiment] = [e for e in client.search_experiments() if e.name == "train"]
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [record["tracking"]["run_id"]]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.suffix == ".ckpt") == [
        "best-epoch001.ckpt", "last.ckpt", "last.prev.ckpt"]


def test_torchrun_started_by_hand_agrees_on_one_run_dir(tmp_path):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--standalone",
                str(TRAIN)]
    result = run_train([*GANG, "logger=csv"], tmp_path, entry=torchrun)
    assert result.returncode == 0, result.stderr[-4000:]
    [run_dir] = run_dirs(tmp_path)
    assert summary(run_dir)["world_size"] == 2


def test_the_parent_exits_with_the_gangs_exit_code(tmp_path):
    # Three devices per node cannot match torchrun's two processes: every rank refuses.
    result = run_train([*GANG, "launcher=torchrun", "strategy.devices=3", "logger=none"], tmp_path)
    assert result.returncode == 1
    assert "strategy.devices=3" in result.stderr
