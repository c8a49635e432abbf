"""``summary.json`` attempt by attempt: what a later attempt, ``aegis status`` and a user
reading the run dir find after runs that completed, failed, were killed outright or left a
damaged record (``aegis.training.record``, issue 23's mutation score). In-process, no torch.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path

import pytest

from aegis.training.record import RunRecord

KILLED_CAUSE = "the process ended without a record (kill -9, the OOM killer, or a lost node)"


@pytest.fixture(autouse=True)
def _no_slurm(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)


def _on_disk(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def test_an_attempt_is_recorded_running_then_finished_with_where_it_ran(tmp_path):
    record = RunRecord(tmp_path, rank_zero=True)
    record.update(global_step=0)
    record.write("running")
    running = _on_disk(tmp_path)
    assert running["status"] == "running" and "finished_at" not in running
    assert (running["attempt"], running["host"], running["pid"]) == (1, socket.gethostname(), os.getpid())
    assert running["attempts"] == [{"attempt": 1, "status": "running", "started_at": running["started_at"],
                                    "host": socket.gethostname(), "pid": os.getpid(), "global_step": 0}]
    returned = record.write("completed", epochs_completed=3, metrics={"val/acc": 0.9})
    done = _on_disk(tmp_path)
    assert done["status"] == "completed" and done["metrics"] == {"val/acc": 0.9}
    assert done["finished_at"] >= done["started_at"] and returned["finished_at"] == done["finished_at"]
    assert [a["status"] for a in done["attempts"]] == ["completed"] and "metrics" not in done["attempts"][0]
    assert done["attempts"][0]["epochs_completed"] == 3


def test_an_attempt_found_running_is_recorded_killed_and_the_next_is_numbered_after_it(tmp_path):
    first = RunRecord(tmp_path, rank_zero=True)
    first.write("running")  # then kill -9: nothing else is written
    second = RunRecord(tmp_path, rank_zero=True)
    second.write("running")
    attempts = _on_disk(tmp_path)["attempts"]
    assert [(a["attempt"], a["status"]) for a in attempts] == [(1, "killed"), (2, "running")]
    assert attempts[0]["cause"] == KILLED_CAUSE


def test_a_failed_rerun_leaves_the_completed_run_on_top_and_its_failure_in_attempts(tmp_path):
    RunRecord(tmp_path, rank_zero=True).write("completed", metrics={"val/acc": 0.9})
    rerun = RunRecord(tmp_path, rank_zero=True)
    rerun.write("running")
    rerun.write("failed", error="RuntimeError: boom")
    record = _on_disk(tmp_path)
    assert (record["status"], record["attempt"], record["metrics"]) == ("completed", 1, {"val/acc": 0.9})
    assert [(a["attempt"], a["status"], a.get("error")) for a in record["attempts"]] == [
        (1, "completed", None), (2, "failed", "RuntimeError: boom")]
    third = RunRecord(tmp_path, rank_zero=True)
    third.write("completed", metrics={"val/acc": 0.95})
    assert (_on_disk(tmp_path)["status"], _on_disk(tmp_path)["attempt"]) == ("completed", 3)


def test_attempt_numbers_continue_from_the_highest_recorded_one(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"status": "failed", "attempts": [
        {"attempt": 1, "status": "failed"}, {"attempt": 5, "status": "failed"}]}))
    RunRecord(tmp_path, rank_zero=True).write("running")
    assert [a["attempt"] for a in _on_disk(tmp_path)["attempts"]] == [1, 5, 6]
    other = tmp_path / "unnumbered"
    other.mkdir()
    (other / "summary.json").write_text(json.dumps({"status": "failed", "attempts": [
        {"attempt": "one", "status": "failed"}, {"status": "failed"}]}))
    RunRecord(other, rank_zero=True).write("running")
    assert _on_disk(other)["attempts"][-1]["attempt"] == 3


def test_a_record_written_before_attempts_were_kept_becomes_attempt_one(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps(
        {"status": "completed", "epochs_completed": 4, "metrics": {"val/acc": 0.8}, "pid": 12}))
    RunRecord(tmp_path, rank_zero=True).write("running")
    record = _on_disk(tmp_path)
    assert record["status"] == "completed" and record["metrics"] == {"val/acc": 0.8}
    assert record["attempts"][0] == {"attempt": 1, "status": "completed", "epochs_completed": 4, "pid": 12}
    assert record["attempts"][1]["attempt"] == 2


def test_only_rank_zero_writes_and_other_ranks_do_not_read_the_record(tmp_path):
    (tmp_path / "summary.json").write_text("{broken")
    record = RunRecord(tmp_path, rank_zero=False)
    assert record.write("completed")["status"] == "completed"
    assert (tmp_path / "summary.json").read_text() == "{broken" and not (tmp_path / "corrupt").exists()


@pytest.mark.parametrize("text, why", [
    ('{"status": "completed", "attempts": [{"attempt": 1, "status": "completed", "pid": 3}, '
     '{"attempt": 2, "status": "failed", "error": "x", "attempts": []}, {"attempt": 3, "status": "fai',
     "was not valid JSON"),
    (json.dumps([{"attempt": 1, "status": "completed", "pid": 3, "metrics": {}}]), "was not a record of attempts"),
    (json.dumps({"status": "completed", "attempts": {"attempt": 1, "status": "completed", "pid": 3}}),
     "was not a record of attempts"),
])
def test_a_damaged_record_is_moved_aside_and_its_readable_attempts_kept(tmp_path, caplog, text, why):
    (tmp_path / "summary.json").write_text(text)
    with caplog.at_level(logging.WARNING, logger="aegis.training"):
        RunRecord(tmp_path, rank_zero=True).write("running")
    [kept] = list((tmp_path / "corrupt").iterdir())
    assert kept.name.startswith(f"summary.json.") and kept.name.endswith(f"-{os.getpid()}")
    assert kept.read_text() == text
    attempts = _on_disk(tmp_path)["attempts"]
    assert attempts[0] == {"attempt": 1, "status": "completed", "pid": 3}
    assert [a["attempt"] for a in attempts] == [1, 2]
    [warning] = [r.getMessage() for r in caplog.records]
    assert why in warning and f"moved to {kept}" in warning and "1 earlier attempt(s) recovered" in warning


def test_a_damaged_record_that_cannot_be_moved_aside_is_said_so_and_a_new_one_written(tmp_path, caplog):
    (tmp_path / "summary.json").write_text("not json")
    (tmp_path / "corrupt").write_text("a file where the folder would go")
    with caplog.at_level(logging.WARNING, logger="aegis.training"):
        RunRecord(tmp_path, rank_zero=True).write("running")
    [warning] = [r.getMessage() for r in caplog.records]
    assert "is not valid JSON" in warning and "could not be moved aside" in warning
    assert _on_disk(tmp_path)["attempts"][0]["attempt"] == 1


def test_an_unreadable_record_starts_a_new_one_with_one_warning(tmp_path, caplog):
    (tmp_path / "summary.json").mkdir()  # reading it fails with an OSError other than "not found"
    with caplog.at_level(logging.WARNING, logger="aegis.training"):
        record = RunRecord(tmp_path, rank_zero=True)
    assert record.current["attempt"] == 1
    [warning] = [r.getMessage() for r in caplog.records]
    assert "cannot be read" in warning and "starts a new record" in warning
    with caplog.at_level(logging.ERROR, logger="aegis.training"):
        assert record.write("failed", error="boom")["status"] == "failed"  # logged, not raised
    assert any("Could not write" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("restart, expected", [("2", 2), (None, 0), ("x", 0)])
def test_an_attempt_started_by_slurm_names_its_job_and_requeue(tmp_path, monkeypatch, restart, expected):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    if restart is not None:
        monkeypatch.setenv("SLURM_RESTART_COUNT", restart)
    RunRecord(tmp_path, rank_zero=True).write("running")
    attempt = _on_disk(tmp_path)["attempts"][0]
    assert (attempt["slurm_job_id"], attempt["slurm_restart"]) == ("4242", expected)


def test_an_attempt_outside_slurm_names_no_job(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "")
    RunRecord(tmp_path, rank_zero=True).write("running")
    assert "slurm_job_id" not in _on_disk(tmp_path)["attempts"][0]


def _own_failure_on_disk(run_dir: Path, attempt: int = 1) -> dict:
    """Another node's supervisor recorded this attempt's cause: rank 3 raised."""
    failure = {"cause": "InjectedFault: boom", "rank": 3, "exception": "InjectedFault", "message": "boom",
               "exit_code": 1}
    (run_dir / "summary.json").write_text(json.dumps({"status": "failed", "attempts": [
        {"attempt": attempt, "status": "failed", "cause": failure["cause"], "failure": failure}]}))
    return failure


LOST = {"cause": "another rank of the gang stopped", "rank": 0, "exception": "DistBackendError",
        "message": "Connection closed by peer", "exit_code": 143}


def test_rank_zero_that_only_lost_its_peer_leaves_a_recorded_cause_and_says_so(tmp_path, caplog):
    record = RunRecord(tmp_path, rank_zero=True)
    _own_failure_on_disk(tmp_path, attempt=record.current["attempt"])
    before = (tmp_path / "summary.json").read_text()
    with caplog.at_level(logging.INFO, logger="aegis.training"):
        returned = record.write("failed", unless_explained=True, cause=LOST["cause"], failure=LOST)
    assert (tmp_path / "summary.json").read_text() == before
    assert returned["status"] == "failed" and returned["cause"] == LOST["cause"]
    assert f"{tmp_path / 'summary.json'} already names this attempt's cause; this rank only lost its peer." in [
        r.getMessage() for r in caplog.records]


def test_without_unless_explained_or_an_own_cause_on_disk_the_rank_writes_its_end(tmp_path):
    record = RunRecord(tmp_path, rank_zero=True)
    _own_failure_on_disk(tmp_path, attempt=record.current["attempt"])
    record.write("failed", cause=LOST["cause"], failure=LOST)  # not asked to defer
    assert _on_disk(tmp_path)["failure"]["rank"] == 0
    other = tmp_path / "other"
    other.mkdir()
    record = RunRecord(other, rank_zero=True)
    (other / "summary.json").write_text(json.dumps({"attempts": [
        {"attempt": 1, "status": "failed", "failure": LOST}]}))  # on disk: only a lost peer, not a cause
    record.write("failed", unless_explained=True, cause="mine", failure={**LOST, "rank": 1})
    assert _on_disk(other)["failure"]["rank"] == 1
    broken = tmp_path / "broken"
    broken.mkdir()
    record = RunRecord(broken, rank_zero=True)
    (broken / "summary.json").write_text(json.dumps({"attempts": [
        {"attempt": 1, "status": "failed", "failure": {"no": "cause"}}]}))
    record.write("failed", unless_explained=True, cause="mine", failure=LOST)
    assert _on_disk(broken)["cause"] == "mine"


def test_a_rank_other_than_zero_never_defers_nor_writes(tmp_path):
    _own_failure_on_disk(tmp_path)
    before = (tmp_path / "summary.json").read_text()
    record = RunRecord(tmp_path, rank_zero=False)
    assert record.write("failed", unless_explained=True, cause="mine")["cause"] == "mine"
    assert (tmp_path / "summary.json").read_text() == before


def test_a_record_that_cannot_be_written_is_logged_with_its_path_and_cause(tmp_path, caplog):
    run_dir = tmp_path / "gone"
    run_dir.mkdir()
    record = RunRecord(run_dir, rank_zero=True)
    run_dir.rmdir()
    with caplog.at_level(logging.ERROR, logger="aegis.training"):
        record.write("failed", error="boom")
    [message] = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"Could not write {run_dir / 'summary.json'}: [Errno 2]")
