"""Runs that fail on purpose (fault=...), and what the user is told: which rank, and why,
in the terminal, in summary.json and on the MLflow run (slow tier: `pytest -m slow`)."""

from __future__ import annotations

import json

import pytest

from helpers import run_dirs, run_train, summary

pytestmark = pytest.mark.slow

GANG = ["strategy=ddp", "launcher=torchrun", "launcher.nproc_per_node=2", "trainer=smoke"]


def _tags(run_dir):
    from mlflow.tracking import MlflowClient

    tracking = json.loads((run_dir / "tracking.json").read_text())
    run = MlflowClient(tracking_uri=tracking["tracking_uri"]).get_run(tracking["run_id"])
    return run.info.status, {k: v for k, v in run.data.tags.items() if k.startswith("aegis.failures.record.")}


def _paragraph(stderr: str) -> list[str]:
    lines = stderr.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("Run failed: "))
    return lines[start:]


def test_a_rank_that_raises_is_named_with_its_exception(tmp_path):
    result = run_train([*GANG, "fault=raise", "fault.rank=1", "fault.step=5", "fault.message=bad batch at step 5"],
                       tmp_path)
    assert result.returncode == 1
    head = _paragraph(result.stderr)[0]
    assert head == "Run failed: rank 1: InjectedFault: bad batch at step 5. (exit code 1)"
    [run_dir] = run_dirs(tmp_path)
    record = summary(run_dir)
    assert record["status"] == "failed"
    failure = record["failure"]
    assert (failure["rank"], failure["exception"], failure["message"]) == (1, "InjectedFault", "bad batch at step 5")
    assert "raise InjectedFault" in "\n".join(failure["log_tail"])
    status, tags = _tags(run_dir)
    assert status == "FAILED"
    assert tags["aegis.failures.record.rank"] == "1" and tags["aegis.failures.record.message"] == "bad batch at step 5"
    assert tags["aegis.failures.record.exception"] == "InjectedFault"


def test_a_rank_killed_by_a_signal_is_named_with_the_signal(tmp_path):
    result = run_train([*GANG, "fault=kill", "fault.rank=1", "fault.step=5"], tmp_path)
    assert result.returncode != 0
    paragraph = _paragraph(result.stderr)
    assert paragraph[0].startswith("Run failed: rank 1: killed by SIGKILL")
    assert any("Injected fault: rank 1 at global step 5 sends itself SIGKILL" in line for line in paragraph)
    # how far the rank got, from its own log (it held only "Initializing distributed ..." before)
    assert any("rank 1: epoch 1 started (global step 0)" in line for line in paragraph)
    shown = [line for line in (result.stdout + result.stderr).splitlines() if "rank 1: epoch" in line]
    assert all(line.lstrip().startswith("|") for line in shown)  # on the terminal only in the report's tail
    [run_dir] = run_dirs(tmp_path)
    record = summary(run_dir)
    assert record["status"] == "failed"
    assert (record["failure"]["rank"], record["failure"]["signal"]) == (1, "SIGKILL")
    _, tags = _tags(run_dir)
    assert tags["aegis.failures.record.signal"] == "SIGKILL" and tags["aegis.failures.record.rank"] == "1"


def test_a_hang_ends_with_the_other_ranks_timeout_naming_the_silent_rank(tmp_path):
    # strategy.timeout_s: the collectives wait (long enough for the gang to form on a busy machine);
    # torchrun then needs 30 s to SIGKILL the deaf rank
    result = run_train([*GANG, "fault=hang", "fault.rank=1", "fault.step=5", "strategy.timeout_s=20"], tmp_path,
                       timeout=240)
    assert result.returncode != 0
    head = _paragraph(result.stderr)[0]
    assert head.startswith("Run failed: rank 1: stopped responding: rank 0's collective timed out waiting for it")
    assert "Timed out waiting 20000ms" in head
    [run_dir] = run_dirs(tmp_path)
    assert summary(run_dir)["failure"]["rank"] == 1


def test_a_local_run_names_its_exception(tmp_path):
    result = run_train(["trainer=smoke", "fault=raise", "fault.step=3", "fault.message=no such column"], tmp_path)
    assert result.returncode == 1
    assert _paragraph(result.stderr)[0] == "Run failed: the run: InjectedFault: no such column. (exit code 1)"
    [run_dir] = run_dirs(tmp_path)
    record = summary(run_dir)
    assert record["status"] == "failed" and record["failure"]["exception"] == "InjectedFault"
    _, tags = _tags(run_dir)
    assert tags["aegis.failures.record.message"] == "no such column"


def test_a_restart_resumes_finishes_and_records_its_cause(tmp_path):
    # step 10: in the second epoch, after the first epoch's last.ckpt
    result = run_train([*GANG, "fault=kill", "fault.rank=1", "fault.step=10", "launcher.max_restarts=1"], tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Restart 1: rank 1: killed by SIGKILL" in result.stderr
    [run_dir] = run_dirs(tmp_path)
    record = summary(run_dir)
    assert record["status"] == "completed" and record["global_step"] == 16
    [restart] = record["restarts"]
    assert restart["attempt"] == 1 and restart["rank"] == 1 and restart["cause"].startswith("killed by SIGKILL")
    first, second = record["attempts"]
    assert first["status"] == "killed" and first["failure"]["signal"] == "SIGKILL"
    assert second["status"] == "completed" and second["resumed_from"].endswith("last.ckpt")
    assert json.loads((run_dir / "fault.json").read_text())["rank"] == 1  # fault.once: the restart ran clean
