"""``aegis status RUN`` while a local run trains: its last epoch's metrics and its tracking
run (the README's promise), and a run killed outright reads as SIGKILL (issue 24, item 9)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from aegis.launch.base import RunContext
from aegis.core.lifecycle import JobRef, State
from aegis.launch.process import process_status

pytest.importorskip("lightning")
# New MLflow stores are copies of a fresh one (tests/conftest.py): their creation is not the subject here.
pytestmark = pytest.mark.usefixtures("store_from_template")


def _ref(run_dir: Path, pid: int) -> JobRef:
    return JobRef(launcher="local", run_id=run_dir.name, run_dir=str(run_dir), pid=pid, host=socket.gethostname())


def test_status_of_a_running_run_shows_its_last_epochs_metrics_and_tracking_run(compose, tmp_path, monkeypatch):
    import lightning.pytorch as L

    from aegis.training.callbacks import RunningRecord
    from aegis.training.run import train

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(RunningRecord, "min_interval_s", 0.0)  # smoke epochs take milliseconds
    run_dir = tmp_path / "run"
    seen = []

    class AskStatus(L.Callback):  # runs after Aegis's own callbacks, as another process would ask
        def on_train_epoch_end(self, trainer, pl_module):
            if trainer.current_epoch == 1:
                seen.append(process_status(_ref(run_dir, os.getpid())))

    overrides = ("trainer=smoke", "trainer.max_epochs=3", "logger.register_model=false")
    cfg = compose(f"paths.root={tmp_path}", "progress=none", *overrides)
    ctx = RunContext(run_dir=run_dir, run_id="run", task_overrides=overrides, config_name="train")
    outcome = train(cfg, ctx, callbacks=[AskStatus()])
    assert outcome.exit_code == 0
    [status] = seen
    assert status.state is State.running
    assert status.details["epochs_completed"] == 2
    assert {"val/acc", "val/loss", "train/loss"} <= set(status.details["metrics"])
    tracking = json.loads((run_dir / "tracking.json").read_text())
    assert status.details["tracking_run_id"] == tracking["run_id"]


def test_a_run_killed_outright_reads_as_sigkill_with_exit_code_137(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (run_dir / "summary.json").write_text(json.dumps(
        {"status": "running", "attempts": [{"attempt": 1, "status": "running", "pid": gone.pid}]}))
    status = process_status(_ref(run_dir, gone.pid))
    assert status.state is State.failed and status.exit_code == 137
    assert status.reason.startswith("killed by SIGKILL (kill -9 or the OOM killer)")
    assert status.exit_status() == 137
