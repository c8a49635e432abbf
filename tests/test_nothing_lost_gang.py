"""Nothing lost across processes (slow tier): kill -9 storms, a gang that loses a rank,
and SIGTERM to the torchrun parent."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import REPO, TRAIN, run_train, summary

pytestmark = pytest.mark.slow

GANG = ["strategy=ddp", "launcher=torchrun", "launcher.nproc_per_node=2", "trainer.accelerator=cpu"]


def _start(args: list[str], root: Path, log_path: Path, env: dict | None = None) -> subprocess.Popen:
    full_env = {**os.environ, "AEGIS_OUTPUT_ROOT": str(root), "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    with open(log_path, "w") as log:
        return subprocess.Popen([sys.executable, str(TRAIN), *args], cwd=REPO, env=full_env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _epochs_logged(log_path: Path) -> int:
    found = re.findall(r"epoch (\d+)/\d+ ", log_path.read_text())
    return int(found[-1]) if found else 0


def _epoch_seconds(log_path: Path) -> float:
    """How long the last logged epoch took ("epoch 2/14 ... (0.4s)")."""
    found = re.findall(r"epoch \d+/\d+ .*\((\d+(?:\.\d+)?)s\)", log_path.read_text())
    return float(found[-1]) if found else 1.0


def _wait_for_epoch(proc: subprocess.Popen, log_path: Path, epoch: int, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while _epochs_logged(log_path) < epoch:
        assert proc.poll() is None, log_path.read_text()[-3000:]
        assert time.time() < deadline, log_path.read_text()[-3000:]
        time.sleep(0.05)


def test_kill_9_at_random_moments_loses_at_most_one_epoch(tmp_path):
    import torch

    rng = random.Random(7)
    args = ["data=synthetic", "data.num_samples=12000", "trainer.max_epochs=14", "logger=none", "run_id=storm",
            "progress=lines", "test_after_fit=false"]
    last = tmp_path / "train" / "runs" / "storm" / "checkpoints" / "last.ckpt"
    lost = []
    for kill in range(4):
        log_path = tmp_path / f"attempt{kill}.log"
        proc = _start(args, tmp_path, log_path)
        done_before = int(torch.load(last, weights_only=False)["epoch"]) + 1 if last.exists() else 0
        _wait_for_epoch(proc, log_path, done_before + 1)
        # A random moment of the next epoch and a half (mid-step, mid-save): each attempt adds at
        # most three epochs, so the fourth never finishes the run before its kill (it did, with
        # a fixed 1.5 s on a fast machine).
        time.sleep(rng.uniform(0.0, min(1.5, 1.5 * _epoch_seconds(log_path))))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        logged = _epochs_logged(log_path)
        saved = int(torch.load(last, weights_only=False)["epoch"]) + 1
        lost.append(logged - saved)
    assert max(lost) <= 1, lost  # epochs finished (logged) but not in last.ckpt

    result = run_train(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    record = summary(last.parent.parent)
    assert record["status"] == "completed" and record["epochs_completed"] == 14
    assert [a["status"] for a in record["attempts"]] == ["killed"] * 4 + ["completed"]
    assert torch.load(last, weights_only=False)["global_step"] == record["global_step"]


def test_a_gang_whose_rank_dies_still_leaves_a_record(tmp_path):
    args = [*GANG, "trainer=smoke", "logger=none", "run_id=dead", "model._target_=faults.DiesOnRankOne"]
    result = run_train(args, tmp_path, env={"PYTHONPATH": str(REPO / "tests")}, timeout=240)
    assert result.returncode != 0
    record = summary(tmp_path / "train" / "runs" / "dead")
    latest = record["attempts"][-1]
    # rank 0 sees its peer vanish (or torchrun's SIGTERM first) and records it; the gang's
    # supervisor then names the rank that died (aegis.failures.triage), not the one that lost it
    assert latest["status"] == "failed", latest
    assert latest["failure"]["rank"] == 1 and latest["failure"]["exit_code"] == 1
    assert latest["cause"].startswith("exited with code 1 without saying why"), latest["cause"]


def test_sigterm_to_the_torchrun_parent_exits_143_after_the_gang_checkpointed(tmp_path):
    import torch

    args = [*GANG, "data=synthetic", "data.num_samples=40000", "trainer.max_epochs=3", "logger=none",
            "run_id=term", "progress=lines"]
    log_path = tmp_path / "gang.log"
    proc = _start(args, tmp_path, log_path)
    _wait_for_epoch(proc, log_path, 1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)  # to the parent alone, as a scheduler would
    assert proc.wait(timeout=120) == 143, log_path.read_text()[-3000:]
    run_dir = tmp_path / "train" / "runs" / "term"
    assert summary(run_dir)["attempts"][-1]["status"] == "preempted"
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert saved["global_step"] > 0


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_sigterm_to_one_node_of_a_two_node_gang_checkpoints_both_at_one_step_and_resumes(tmp_path):
    """Two torchrun agents, as two pods of a PyTorchJob: a SIGTERM to one node alone (a
    preempted worker) stops every rank at the same batch, one checkpoint is written at that
    step, and both nodes exit 143 (retryable), the node whose peer was signalled too. The
    relaunched gang resumes from that step, not from the epoch's start."""
    import torch

    port = _free_port()
    base = ["strategy=ddp", "launcher=torchrun", "launcher.nnodes=2", "launcher.nproc_per_node=1",
            f"launcher.master_port={port}", "trainer.accelerator=cpu", "data=synthetic", "data.num_samples=40000",
            "trainer.max_epochs=2", "logger=none", "run_id=pair", "progress=lines", "test_after_fit=false"]
    run_dir = tmp_path / "train" / "runs" / "pair"

    def start_pair(attempt: str) -> list[subprocess.Popen]:
        return [_start([*base, f"launcher.node_rank={node}"], tmp_path, tmp_path / f"{attempt}-node{node}.log")
                for node in (0, 1)]

    nodes = start_pair("first")
    _wait_for_epoch(nodes[0], tmp_path / "first-node0.log", 1)
    time.sleep(0.5)  # into the second epoch
    nodes[1].send_signal(signal.SIGTERM)  # the worker pod alone is preempted
    codes = [node.wait(timeout=120) for node in nodes]
    logs = "".join((tmp_path / f"first-node{n}.log").read_text()[-2000:] for n in (0, 1))
    assert codes == [143, 143], logs
    preempted = summary(run_dir)
    assert preempted["status"] == "preempted", logs
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
    steps_per_epoch = 125  # 40000 x 0.8 samples, 2 ranks, batches of 128
    assert saved == preempted["global_step"]
    assert steps_per_epoch < saved < 2 * steps_per_epoch  # mid second epoch: not back to an epoch's end

    nodes = start_pair("second")
    codes = [node.wait(timeout=240) for node in nodes]
    logs = "".join((tmp_path / f"second-node{n}.log").read_text()[-2000:] for n in (0, 1))
    assert codes == [0, 0], logs
    record = summary(run_dir)
    assert record["status"] == "completed" and record["world_size"] == 2
    assert record["resumed_from"].endswith("last.ckpt")
    assert record["timing"]["train_steps"] == record["global_step"] - saved
