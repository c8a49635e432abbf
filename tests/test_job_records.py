"""What ``job.json`` and ``/proc`` tell ``aegis status`` and ``aegis cancel`` about a job.

The rules ``aegis.core.lifecycle`` decides and no other test pinned (issue 23's mutation
score): how a job is named, that a record is written wherever its run dir is, the exit
status a failed job stands for, the JSON ``status --json`` prints, and how a process is
identified (its pid, start time and command line) even when its name holds ``)`` or its
arguments are not UTF-8, without ever signalling it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aegis.core.lifecycle import (JobRef, JobStatus, ReplicaStatus, State, process_alive, process_cmdline,
                                  process_start_time, valid_pid)

# A process name (/proc/<pid>/comm, at most 15 bytes) with the characters that break a
# naive parse of /proc/<pid>/stat: "pid (comm) state ppid ...".
ODD_NAME = "a) Z 1 2 (b"


def _ref(tmp_path: Path, **fields) -> JobRef:
    return JobRef(launcher="local", run_id="r", run_dir=str(tmp_path), **fields)


def test_a_job_is_described_by_its_backend_label_its_object_or_its_pid_else_not_at_all(tmp_path):
    assert _ref(tmp_path, pid=41, host="node-a").describe() == "pid 41 on node-a"
    assert _ref(tmp_path).describe() == ""
    assert _ref(tmp_path, kind="PyTorchJob", name="j", namespace="ns", pid=41).describe() == "PyTorchJob ns/j"
    assert _ref(tmp_path, pid=41, backend={"label": "SLURM job 12"}).describe() == "SLURM job 12"


def test_job_json_is_written_into_a_run_dir_whose_parents_do_not_exist_yet(tmp_path):
    run_dir = tmp_path / "outputs" / "train" / "runs" / "r"
    ref = JobRef(launcher="local", run_id="r", run_dir=str(run_dir), pid=7)
    assert ref.write() == run_dir / "job.json"
    assert JobRef.read(run_dir) == ref


def test_a_job_json_with_only_the_three_required_keys_is_a_job(tmp_path):
    (tmp_path / "job.json").write_text(json.dumps({"launcher": "local", "run_id": "r", "run_dir": str(tmp_path)}))
    ref = JobRef.read(tmp_path)
    assert ref is not None and (ref.launcher, ref.run_id, ref.kind, ref.pid) == ("local", "r", "process", None)


@pytest.mark.parametrize("state, exit_code, expected", [
    (State.succeeded, None, 0),
    (State.succeeded, 3, 0),
    (State.failed, 137, 137),
    (State.failed, None, 1),  # a job that failed without an exit code still exits non-zero
    (State.failed, 0, 1),  # ... and so does one whose last process happened to exit 0
    (State.cancelled, 143, 143),
])
def test_the_exit_status_of_a_job_is_0_only_when_it_succeeded(state, exit_code, expected):
    assert JobStatus(state, exit_code=exit_code).exit_status() == expected


def test_status_json_holds_state_words_for_the_job_and_each_replica():
    status = JobStatus(State.failed, [ReplicaStatus("rank0", State.succeeded, 0),
                                      ReplicaStatus("rank1", State.failed, 1, "OOMKilled", "node-b")],
                       exit_code=1, reason="rank1 failed", details={"val/acc": 0.5})
    assert json.loads(json.dumps(status.as_dict())) == {
        "state": "failed", "exit_code": 1, "reason": "rank1 failed", "details": {"val/acc": 0.5},
        "replicas": [
            {"name": "rank0", "state": "succeeded", "exit_code": 0, "reason": None, "node": None},
            {"name": "rank1", "state": "failed", "exit_code": 1, "reason": "OOMKilled", "node": "node-b"},
        ]}
    assert status.state is State.failed and status.replicas[1].state is State.failed  # left as it was


@pytest.mark.parametrize("pid, valid", [(1, True), (41, True), (0, False), (-1, False), (True, False),
                                        ("12", False), (None, False), (1.0, False)])
def test_a_pid_names_one_process_only_as_a_positive_int(pid, valid):
    assert valid_pid(pid) is valid


@pytest.mark.parametrize("pid", [0, -1, None, "1"])
def test_a_pid_that_names_no_single_process_is_not_alive(pid):
    assert process_alive(pid, None) is False


def test_a_process_on_another_host_is_neither_alive_nor_dead_from_here():
    assert process_alive(os.getpid(), "not-" + os.uname().nodename) is None
    assert process_alive(os.getpid(), os.uname().nodename) is True


def _uptime_ticks() -> float:
    return float(Path("/proc/uptime").read_text().split()[0]) * os.sysconf("SC_CLK_TCK")


def _spawn(*argv: bytes | str, name: str | None = None) -> subprocess.Popen:
    """A python child that renames itself to ``name`` (if given), says so, then sleeps."""
    rename = f"open('/proc/self/comm', 'w').write({name!r}); " if name else ""
    code = f"import sys, time; {rename}print('ready', flush=True); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.PIPE)
    assert child.stdout.readline() == b"ready\n"
    return child


def _stop(child: subprocess.Popen) -> None:
    child.kill()
    child.wait()


@pytest.mark.parametrize("name", [None, ODD_NAME])
def test_a_process_start_time_is_when_it_started_whatever_its_name(name):
    before = _uptime_ticks()
    child = _spawn(name=name)
    try:
        started = process_start_time(child.pid)
        assert isinstance(started, int)
        assert before - 2 * os.sysconf("SC_CLK_TCK") <= started <= _uptime_ticks() + 1
    finally:
        _stop(child)
    assert process_start_time(child.pid) is None  # gone


def test_a_process_command_line_is_its_arguments_joined_by_spaces_even_when_not_utf8():
    child = _spawn("first arg", b"caf\xe9")
    try:
        line = process_cmdline(child.pid)
    finally:
        _stop(child)
    assert line is not None and line.startswith(sys.executable + " -c import sys, time;")
    assert line.endswith("time.sleep(30) first arg caf\ufffd")
    assert process_cmdline(child.pid) is None and process_cmdline(0) is None


def test_asking_whether_a_process_is_alive_never_signals_it():
    child = _spawn()
    try:
        assert process_alive(child.pid, None) is True
        time.sleep(0.2)
        assert child.poll() is None  # still running: signal 0 only
    finally:
        _stop(child)


def test_an_exited_process_whose_name_holds_a_parenthesis_is_not_alive():
    name = "a) R (b"  # read from its first ")", the state would be R
    child = subprocess.Popen([sys.executable, "-c", f"open('/proc/self/comm', 'w').write({name!r})"])
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child never exited"
            time.sleep(0.02)
        assert Path(f"/proc/{child.pid}/comm").read_text().strip() == name
        assert process_alive(child.pid, None) is False
    finally:
        child.wait()


def test_a_process_this_user_may_not_signal_is_alive():
    """``os.kill(pid, 0)`` on another user's process raises PermissionError: it exists."""
    if os.geteuid() != 0:
        assert process_alive(1, None) is True
        return
    root_owned = os.getpid()
    assert process_alive(root_owned, None) is True
    child = os.fork()
    if child == 0:  # the child becomes an unprivileged user and asks about this process
        code = 13
        try:
            os.setgid(65534)
            os.setuid(65534)
            code = {True: 10, False: 11, None: 12}[process_alive(root_owned, None)]
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 10
