"""SIGTERM to a local multirun (Hydra's basic launcher, every job in this one process) stops
the sweep: the running job checkpoints and is recorded preempted, the jobs after it never
start, and the process exits 143. Before, the preempted job returned like a failed one and
Hydra started the next job, which then trained to its end with the signal spent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import REPO, TRAIN, run_dirs, summary


@pytest.mark.slow
def test_sigterm_to_a_local_multirun_stops_the_sweep_after_checkpointing_the_running_job(tmp_path):
    env = {**os.environ, "AEGIS_OUTPUT_ROOT": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    sweep = subprocess.Popen([sys.executable, str(TRAIN), "-m", "model.lr=0.01,0.02,0.03", "trainer=smoke",
                              "trainer.max_epochs=500", "logger=csv", "hydra.sweep.dir=" + str(tmp_path / "sweep")],
                             cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        first = tmp_path / "sweep" / "0" / "summary.json"
        while time.monotonic() < deadline and sweep.poll() is None:
            if first.is_file() and (summary(first.parent).get("epochs_completed") or 0) >= 2:
                break
            time.sleep(0.2)
        assert sweep.poll() is None, sweep.communicate()[0][-3000:]
        sweep.send_signal(signal.SIGTERM)
        out = sweep.communicate(timeout=60)[0]
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 143, out[-3000:]
    assert [d.name for d in run_dirs(tmp_path / "sweep")] == ["0"], out[-3000:]  # jobs 1 and 2 never started
    record = summary(tmp_path / "sweep" / "0")
    assert record["status"] == "preempted" and record["checkpoints"]["last"], record
    assert "Sweep stopped: job" in out and "the jobs after it were not started" in out, out[-3000:]
    assert "#1 :" not in out, out[-3000:]
