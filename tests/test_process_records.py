"""``aegis status/logs/cancel`` of a job that is a process on this machine, read from its
run dir (``aegis.launch.process``, issue 23's mutation score): the state and exit code each
recorded outcome stands for, what status shows of the record, which replicas have logs,
and what cancel refuses, writes and signals.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aegis.core.lifecycle import CANCEL_FILE, JobRef, State, process_start_time
from aegis.errors import AegisError
from aegis.launch.process import (KILLED_WITHOUT_RECORD, JobNotRunning, ProcessJobs, claim_run_dir,
                                  not_the_runs_process, process_cancel, process_logs, process_status, rank_logs)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _ref(run_dir: Path, pid: int | None, **fields) -> JobRef:
    return JobRef(launcher="local", run_id=run_dir.name, run_dir=str(run_dir), pid=pid,
                  host=socket.gethostname(), **fields)


def _record(run_dir: Path, attempt: dict, **top) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "summary.json").write_text(json.dumps({**top, "attempts": [{"attempt": 1, **attempt}]}))


def _sleeping(*args: str) -> subprocess.Popen:
    """A process that sleeps with ``args`` on its command line, once it is running them."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)", *args],
                            stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"ready\n"
    return proc


@pytest.fixture
def sleeper():
    proc = _sleeping("run_id=r")
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("recorded, state, exit_code", [
    ("completed", State.succeeded, 0),
    ("failed", State.failed, 1),
    ("killed", State.failed, 1),
    ("preempted", State.preempted, 143),
    ("cancelled", State.cancelled, 143),
    ("stopped", State.cancelled, 143),  # a search stopped the trial early
])
def test_each_recorded_outcome_is_a_state_and_an_exit_code(tmp_path, recorded, state, exit_code):
    _record(tmp_path / "r", {"status": recorded})
    status = process_status(_ref(tmp_path / "r", _dead_pid()))
    assert (status.state, status.exit_code) == (state, exit_code)


def test_a_failed_attempt_gives_its_cause_else_its_error_and_other_outcomes_no_error(tmp_path):
    _record(tmp_path / "a", {"status": "failed", "error": "RuntimeError: boom"})
    assert process_status(_ref(tmp_path / "a", None)).reason == "RuntimeError: boom"
    _record(tmp_path / "b", {"status": "failed", "error": "RuntimeError: boom", "cause": "no space left on device"})
    assert process_status(_ref(tmp_path / "b", None)).reason == "no space left on device"
    _record(tmp_path / "c", {"status": "preempted", "error": "an old error"})
    assert process_status(_ref(tmp_path / "c", None)).reason is None
    _record(tmp_path / "d", {"status": "preempted", "cause": "SIGTERM from the kubelet"})
    assert process_status(_ref(tmp_path / "d", None)).reason == "SIGTERM from the kubelet"


def test_a_run_killed_outright_is_failed_with_137_and_says_why(tmp_path):
    _record(tmp_path / "r", {"status": "running"})
    status = process_status(_ref(tmp_path / "r", _dead_pid()))
    assert (status.state, status.exit_code, status.reason) == (State.failed, 137, KILLED_WITHOUT_RECORD)


def test_a_run_without_a_record_is_pending_while_its_process_lives_else_unknown(tmp_path):
    (tmp_path / "r").mkdir()
    status = process_status(_ref(tmp_path / "r", os.getpid()))
    assert (status.state, status.reason, status.exit_code) == (State.pending, "starting (no record yet)", None)
    status = process_status(_ref(tmp_path / "r", _dead_pid()))
    assert (status.state, status.reason) == (State.unknown, "no record in the run dir and no process")
    assert status.exit_code is None
    other_host = JobRef(launcher="local", run_id="r", run_dir=str(tmp_path / "r"), pid=os.getpid(), host="elsewhere")
    assert process_status(other_host).state is State.unknown


def test_a_record_without_attempts_is_its_own_attempt(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "summary.json").write_text(json.dumps({"status": "completed", "attempts": []}))
    assert process_status(_ref(tmp_path / "r", None)).state is State.succeeded


def test_status_details_are_the_records_progress_metrics_and_tracking_run(tmp_path):
    _record(tmp_path / "r", {"status": "running"}, metrics={"val/acc": 0.9}, epochs_completed=2, global_step=40,
            world_size=2, tracking={"run_id": "abc"}, ignored="x", global_step_extra=None)
    status = process_status(_ref(tmp_path / "r", os.getpid()))
    assert status.state is State.running and status.reason is None and status.exit_code is None
    assert status.details == {"metrics": {"val/acc": 0.9}, "epochs_completed": 2, "global_step": 40,
                              "world_size": 2, "tracking_run_id": "abc"}
    _record(tmp_path / "s", {"status": "running"}, epochs_completed=0, metrics=None, tracking={})
    assert process_status(_ref(tmp_path / "s", os.getpid())).details == {"epochs_completed": 0}


def test_each_ranks_log_is_a_replica(tmp_path):
    run_dir = tmp_path / "r"
    _record(run_dir, {"status": "completed"})
    for name in ("train.log", "train.rank1.log", "train.rank10.log"):
        (run_dir / name).write_text(f"{name}\n")
    (run_dir / "train.log.bak").write_text("")
    assert rank_logs(run_dir) == {"rank0": run_dir / "train.log", "rank1": run_dir / "train.rank1.log",
                                  "rank10": run_dir / "train.rank10.log"}
    status = process_status(_ref(run_dir, None))
    assert [(r.name, r.state) for r in status.replicas] == [("rank0", State.succeeded), ("rank1", State.succeeded),
                                                            ("rank10", State.succeeded)]
    assert list(ProcessJobs().logs(_ref(run_dir, None), "rank1")) == ["train.rank1.log"]
    assert list(process_logs(_ref(run_dir, None))) == ["train.log"]
    (run_dir / "train.log").unlink()
    assert "rank0" not in rank_logs(run_dir)


def test_logs_of_an_unknown_replica_name_the_replicas_there_are(tmp_path):
    run_dir = tmp_path / "r"
    _record(run_dir, {"status": "completed"})
    with pytest.raises(AegisError, match=r"^run r has no log for replica 'rank0': its replicas are none yet\.$"):
        list(process_logs(_ref(run_dir, None)))
    (run_dir / "train.rank1.log").write_text("")
    (run_dir / "train.log").write_text("")
    with pytest.raises(AegisError, match=r"no log for replica 'rank3': its replicas are rank0, rank1\.$"):
        list(process_logs(_ref(run_dir, None), "rank3"))


def test_logs_of_a_starting_run_wait_for_its_log(tmp_path):
    run_dir = tmp_path / "r"
    _record(run_dir, {"status": "running"})
    assert list(process_logs(_ref(run_dir, os.getpid()))) == []  # running, no log yet: nothing, no error
    done = tmp_path / "done"
    _record(done, {"status": "completed"})
    assert list(process_logs(_ref(done, None), follow=True, poll_s=0)) == []  # followed: waited for, ended


def test_a_job_is_the_runs_process_by_its_recorded_start_time(tmp_path, sleeper):
    run_dir = tmp_path / "r"
    started = process_start_time(sleeper.pid)
    assert not_the_runs_process(_ref(run_dir, sleeper.pid, start_time=started)) is None
    why = not_the_runs_process(_ref(run_dir, sleeper.pid, start_time=started - 5))
    assert why == (f"pid {sleeper.pid} is not run r's process: it started at tick {started}, not at tick "
                   f"{started - 5} as {run_dir / 'job.json'} records (the pid was reused, or the file is not the "
                   "run's), so nothing was signalled.")
    gone = _dead_pid()
    assert not_the_runs_process(_ref(run_dir, gone, start_time=started)) == (
        f"run r's process (pid {gone}) ended before it could be cancelled.")


def test_without_a_start_time_the_process_must_name_the_run(tmp_path, sleeper):
    assert not_the_runs_process(_ref(tmp_path / "r", sleeper.pid)) is None  # run_id=r on its command line
    assert not_the_runs_process(_ref(tmp_path / "q", sleeper.pid)).startswith(
        f"pid {sleeper.pid} is not shown to be run q's process: {tmp_path / 'q' / 'job.json'} records no start time")
    named, in_dir = _sleeping("+run_id=q"), _sleeping(f"hydra.run.dir={tmp_path}/p")
    try:
        assert not_the_runs_process(_ref(tmp_path / "q", named.pid)) is None
        assert not_the_runs_process(_ref(tmp_path / "p", in_dir.pid)) is None
        assert not_the_runs_process(_ref(tmp_path / "qq", named.pid)) is not None
    finally:
        for proc in (named, in_dir):
            proc.kill()
            proc.wait()


def test_cancel_writes_the_request_then_sends_sigterm_to_the_runs_process(tmp_path, sleeper):
    run_dir = tmp_path / "r"
    _record(run_dir, {"status": "running"})
    (run_dir / CANCEL_FILE).write_text("an earlier attempt's request\n")
    ref = claim_run_dir("local", run_dir, "r", sleeper.pid)
    assert not (run_dir / CANCEL_FILE).exists()  # a new attempt forgets the old request
    assert (ref.pid, ref.host, ref.start_time) == (sleeper.pid, socket.gethostname(), process_start_time(sleeper.pid))
    assert JobRef.read(run_dir) == ref
    before = time.time()
    ProcessJobs().cancel(ref)
    assert sleeper.wait(timeout=10) == -signal.SIGTERM
    assert before <= float((run_dir / CANCEL_FILE).read_text()) <= time.time()


def test_cancel_refuses_a_finished_a_remote_and_a_vanished_job_and_writes_nothing(tmp_path, sleeper):
    done = tmp_path / "done"
    _record(done, {"status": "completed"})
    with pytest.raises(JobNotRunning, match=r"^run done is not running \(it is succeeded\): there is nothing"):
        process_cancel(_ref(done, sleeper.pid))
    remote = tmp_path / "remote"
    _record(remote, {"status": "running"})
    ref = JobRef(launcher="local", run_id="remote", run_dir=str(remote), pid=sleeper.pid, host="node-b")
    with pytest.raises(JobNotRunning, match=r"^run remote runs on host node-b, not this one: cancel it there "
                                            r"\(python -m aegis cancel remote\)\.$"):
        process_cancel(ref)
    starting = tmp_path / "starting"
    starting.mkdir()
    gone = _dead_pid()
    with pytest.raises(JobNotRunning, match="is not running"):
        process_cancel(_ref(starting, gone))
    with pytest.raises(AegisError, match=r"names pid -1, which is not one process \(expected a whole number >= 1\)"):
        process_cancel(_ref(starting, -1))
    assert sleeper.poll() is None
    assert not any((p / CANCEL_FILE).exists() for p in (done, remote, starting))


def test_a_log_with_bytes_that_are_not_utf8_is_read_with_replacement_characters(tmp_path):
    run_dir = tmp_path / "r"
    _record(run_dir, {"status": "completed"})
    (run_dir / "train.log").write_bytes(b"caf\xe9 au lait\nok\n")
    assert list(ProcessJobs().logs(_ref(run_dir, None))) == ["caf\ufffd au lait", "ok"]


def test_following_a_runs_log_ends_when_its_process_is_gone(tmp_path):
    run_dir = tmp_path / "r"
    _record(run_dir, {"status": "running"})
    (run_dir / "train.log").write_text("first\n")
    proc = _sleeping()
    try:
        lines = ProcessJobs().logs(_ref(run_dir, proc.pid), follow=True)
        assert next(lines) == "first"
        with open(run_dir / "train.log", "a") as log:
            log.write("second\n")
        assert next(lines) == "second"
        proc.kill()
        proc.wait()
        with open(run_dir / "train.log", "a") as log:
            log.write("last words")
        assert list(lines) == ["last words"]
    finally:
        proc.kill()
        proc.wait()


def test_a_first_attempt_claims_its_run_dir_under_its_launchers_name(tmp_path, sleeper):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    ref = claim_run_dir("torchrun", run_dir, "r", sleeper.pid)  # no earlier cancel request to forget
    assert (ref.launcher, ref.run_id, ref.run_dir, ref.kind) == ("torchrun", "r", str(run_dir), "process")
    assert JobRef.read(run_dir) == ref and not (run_dir / CANCEL_FILE).exists()
