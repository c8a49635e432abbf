"""`aegis list/status/logs/cancel`: finding runs, reading their state, from any process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aegis.commands import main
from aegis.core.lifecycle import JobRef, State
from aegis.launch.process import process_status
from aegis.runs import RunNotFound, find_run
from helpers import REPO, TRAIN


def _run_dir(root: Path, run_id: str, *, record: dict | None = None, pid: int | None = None,
             launcher: str = "local", log: str | None = None) -> Path:
    path = root / "train" / "runs" / run_id
    path.mkdir(parents=True)
    if pid is not None:
        JobRef(launcher=launcher, run_id=run_id, run_dir=str(path), pid=pid, host=os.uname().nodename).write()
    if record is not None:
        (path / "summary.json").write_text(json.dumps({"run_id": run_id, **record}))
    if log is not None:
        (path / "train.log").write_text(log)
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_runs_are_found_by_id_unique_prefix_or_path(tmp_path):
    a = _run_dir(tmp_path, "exp-alpha", record={"status": "completed"})
    _run_dir(tmp_path, "exp-beta", record={"status": "completed"})
    sweep_job = tmp_path / "train" / "multiruns" / "sweep1" / "0"
    sweep_job.mkdir(parents=True)
    (sweep_job / "summary.json").write_text(json.dumps({"run_id": "sweep1-0", "status": "failed"}))

    assert find_run("exp-alpha", tmp_path).path == a
    assert find_run("exp-a", tmp_path).path == a
    assert find_run(str(a), tmp_path).path == a
    assert find_run("sweep1-0", tmp_path).path == sweep_job
    with pytest.raises(RunNotFound, match="matches 2 runs"):
        find_run("exp-", tmp_path)
    with pytest.raises(RunNotFound, match="no run 'nope'"):
        find_run("nope", tmp_path)


@pytest.mark.parametrize("recorded,alive,expected", [
    ("running", True, State.running),
    ("running", False, State.failed),  # the record never ended: killed outright
    ("completed", False, State.succeeded),
    ("preempted", False, State.preempted),
    ("cancelled", False, State.cancelled),
    ("failed", False, State.failed),
    (None, True, State.pending),  # started, no record yet
])
def test_a_process_jobs_state_comes_from_its_record_and_its_process(tmp_path, recorded, alive, expected):
    pid = os.getpid() if alive else _dead_pid()
    record = {"status": recorded, "attempts": [{"attempt": 1, "status": recorded}]} if recorded else None
    run_dir = _run_dir(tmp_path, "r", record=record, pid=pid)
    status = process_status(JobRef.read(run_dir))
    assert status.state is expected
    assert status.state.terminal == (expected not in (State.running, State.pending))


def test_a_later_failed_attempt_is_the_jobs_state_even_under_a_completed_record(tmp_path):
    run_dir = _run_dir(tmp_path, "r", pid=_dead_pid(), record={
        "status": "completed", "attempts": [{"attempt": 1, "status": "completed"},
                                            {"attempt": 2, "status": "failed", "cause": "no space left on device"}]})
    status = process_status(JobRef.read(run_dir))
    assert status.state is State.failed and status.reason == "no space left on device" and status.exit_code == 1


def test_cli_lists_shows_and_prints_logs(tmp_path, capsys):
    _run_dir(tmp_path, "done1", pid=_dead_pid(), log="line one\nline two\n",
             record={"status": "completed", "metrics": {"test/acc": 0.97}, "attempts": [{"status": "completed"}]})
    assert main(["--root", str(tmp_path), "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split() == ["RUN", "ID", "LAUNCHER", "STATE", "AGE", "METRIC", "JOB"]
    assert listing[1].split()[:3] == ["done1", "local", "succeeded"] and "test/acc=0.9700" in listing[1]

    assert main(["--root", str(tmp_path), "status", "done1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "succeeded"
    assert main(["--root", str(tmp_path), "logs", "done1"]) == 0
    assert capsys.readouterr().out.splitlines() == ["line one", "line two"]


def test_global_options_after_the_subcommand_and_ambiguous_prefixes_and_a_starting_runs_logs(tmp_path, capsys):
    """Issue 24 item 10: `aegis list --root DIR` failed ("unrecognized arguments"); an ambiguous
    prefix ended its list in "..." however few it listed; `aegis logs` of a run in its first
    seconds printed nothing at all."""
    _run_dir(tmp_path, "done1", pid=_dead_pid(), record={"status": "completed", "attempts": [{"status": "completed"}]})
    _run_dir(tmp_path, "done2", pid=_dead_pid(), record={"status": "completed", "attempts": [{"status": "completed"}]})
    assert main(["list", "--root", str(tmp_path)]) == 0
    assert sorted(line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]) == ["done1", "done2"]
    assert main(["list", "--limit", "5", "--root", str(tmp_path)]) == 0
    assert "done1" in capsys.readouterr().out
    assert main(["--root", str(tmp_path / "elsewhere"), "status", "done1", "--root", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("succeeded")  # the later --root wins
    assert main(["--root", str(tmp_path), "list"]) == 0 and "done2" in capsys.readouterr().out  # as before

    assert main(["status", "done", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "matches 2 runs" in err and "(done1, done2)" in err and "..." not in err
    for n in range(3, 9):
        _run_dir(tmp_path, f"done{n}", record={"status": "completed"})
    assert main(["status", "done", "--root", str(tmp_path)]) == 1
    assert "(done1, done2, done3, done4, done5 and 3 more)" in capsys.readouterr().err

    _run_dir(tmp_path, "starting", pid=os.getpid())  # started, no record, no log line yet
    assert main(["logs", "starting", "--root", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("run starting is pending and has logged nothing yet (it is starting")
    (tmp_path / "train" / "runs" / "starting" / "train.log").write_text("")  # Hydra's, still empty
    assert main(["logs", "starting", "--root", str(tmp_path)]) == 0
    assert "has logged nothing yet" in capsys.readouterr().err


def test_cli_errors_are_one_sentence_with_exit_1(tmp_path, capsys):
    _run_dir(tmp_path, "done1", pid=_dead_pid(), record={"status": "completed", "attempts": [{"status": "completed"}]})
    assert main(["--root", str(tmp_path), "status", "no-such-run"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: no run 'no-such-run'")
    assert main(["--root", str(tmp_path), "cancel", "done1"]) == 1
    assert "not running (it is succeeded)" in capsys.readouterr().err
    assert main(["--root", str(tmp_path), "logs", "done1", "--replica", "rank3"]) == 1
    assert "no log for replica 'rank3'" in capsys.readouterr().err


# ------------------------------------------------- cancel signals only the run's own process

RUNNING = {"status": "running", "attempts": [{"status": "running"}]}


@pytest.fixture
def sleeper():
    """An unrelated process a planted or stale job.json may name."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def _alive_after(proc: subprocess.Popen, wait_s: float = 0.3) -> bool:
    time.sleep(wait_s)
    return proc.poll() is None


def test_cancel_refuses_a_planted_job_json_naming_another_process(tmp_path, capsys, sleeper):
    run_dir = _run_dir(tmp_path, "planted", pid=sleeper.pid, record=RUNNING)  # no start time recorded
    assert main(["--root", str(tmp_path), "cancel", "planted", "--no-wait"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"pid {sleeper.pid} is not shown to be run planted's process" in err[0], err
    assert _alive_after(sleeper) and not (run_dir / "cancel.requested").exists()


def test_cancel_refuses_a_pid_reused_by_another_process(tmp_path, capsys, sleeper):
    from aegis.core.lifecycle import process_start_time

    run_dir = _run_dir(tmp_path, "reused", record=RUNNING)
    started = process_start_time(sleeper.pid)
    assert isinstance(started, int)
    JobRef(launcher="local", run_id="reused", run_dir=str(run_dir), pid=sleeper.pid, host=os.uname().nodename,
           start_time=started - 100).write()  # the run's process died; the pid now names the sleep
    assert main(["--root", str(tmp_path), "cancel", "reused", "--no-wait"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"pid {sleeper.pid} is not run reused's process" in err[0], err
    assert "nothing was signalled" in err[0]
    assert _alive_after(sleeper) and not (run_dir / "cancel.requested").exists()


@pytest.mark.parametrize("pid", [-1, 0, "1"])
def test_cancel_refuses_a_pid_that_is_not_one_process(tmp_path, capsys, pid):
    run_dir = _run_dir(tmp_path, "groups", record=RUNNING)
    (run_dir / "job.json").write_text(json.dumps({"launcher": "local", "run_id": "groups", "run_dir": str(run_dir),
                                                  "pid": pid, "host": os.uname().nodename}))
    assert main(["--root", str(tmp_path), "cancel", "groups", "--no-wait"]) == 1
    assert "which is not one process" in capsys.readouterr().err
    assert not (run_dir / "cancel.requested").exists()


def test_cancel_signals_the_process_that_claimed_the_run_dir_and_writes_only_there(tmp_path, capsys, sleeper):
    from aegis.launch.process import claim_run_dir

    run_dir = _run_dir(tmp_path, "mine", record=RUNNING)
    elsewhere = tmp_path / "elsewhere"
    ref = claim_run_dir("local", run_dir, "mine", sleeper.pid)
    assert ref.start_time is not None and json.loads((run_dir / "job.json").read_text())["start_time"] == ref.start_time
    data = json.loads((run_dir / "job.json").read_text())
    (run_dir / "job.json").write_text(json.dumps({**data, "run_dir": str(elsewhere)}))  # the file may say anything
    assert main(["--root", str(tmp_path), "cancel", "mine", "--no-wait"]) == 0
    assert sleeper.wait(timeout=10) == -signal.SIGTERM
    assert (run_dir / "cancel.requested").is_file() and not elsewhere.exists()


def test_cancel_acts_only_on_runs_under_the_outputs_root(tmp_path, capsys, sleeper):
    from aegis.launch.process import claim_run_dir

    outside = _run_dir(tmp_path / "other", "far", record=RUNNING)
    claim_run_dir("local", outside, "far", sleeper.pid)
    root = tmp_path / "root"
    root.mkdir()
    assert main(["--root", str(root), "cancel", str(outside), "--no-wait"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not under the outputs root" in err[0], err
    assert _alive_after(sleeper) and not (outside / "cancel.requested").exists()


def test_logs_follow_streams_until_the_job_ends(tmp_path):
    from aegis.launch.process import process_logs

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        run_dir = _run_dir(tmp_path, "live", pid=proc.pid, log="first\n",
                           record={"status": "running", "attempts": [{"status": "running"}]})
        lines = process_logs(JobRef.read(run_dir), follow=True, poll_s=0.05)
        assert next(lines) == "first"
        with open(run_dir / "train.log", "a") as log:
            log.write("second\n")
        assert next(lines) == "second"
        proc.kill()
        proc.wait()
        with open(run_dir / "train.log", "a") as log:
            log.write("last words\n")
        assert list(lines) == ["last words"]  # ends once the process is gone, nothing missed
    finally:
        proc.kill()


def test_the_cli_never_imports_torch(tmp_path):
    _run_dir(tmp_path, "done1", pid=_dead_pid(), record={"status": "completed", "attempts": [{"status": "completed"}]})
    code = ("import sys; from aegis.commands import main; "
            f"assert main(['--root', {str(tmp_path)!r}, 'list']) == 0; "
            f"assert main(['--root', {str(tmp_path)!r}, 'status', 'done1']) == 0; "
            "heavy = {'torch', 'lightning', 'mlflow', 'kubernetes'} & set(sys.modules); "
            "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def _aegis(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aegis", "--root", str(root), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def _start_run(root: Path, args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "AEGIS_OUTPUT_ROOT": str(root), "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen([sys.executable, str(TRAIN), *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _wait_for_state(root: Path, run_id: str, state: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, f"exited early ({proc.returncode})"
        result = _aegis(root, "status", run_id)
        if result.returncode == 0 and result.stdout.splitlines()[0] == state:
            return
        time.sleep(0.5)
    raise AssertionError(f"never {state}: {result.stdout}{result.stderr}")


@pytest.mark.slow
@pytest.mark.parametrize("gang", [False, True], ids=["local", "torchrun"])
def test_a_run_is_listed_followed_and_cancelled_from_another_process(tmp_path, gang):
    import torch

    args = ["trainer.max_epochs=500", "run_id=X", "logger=none", "progress=lines"]
    if gang:
        args += ["strategy=ddp", "launcher=torchrun", "launcher.nproc_per_node=2", "trainer.accelerator=cpu"]
    proc = _start_run(tmp_path, args)
    try:
        _wait_for_state(tmp_path, "X", "running", proc)
        deadline = time.time() + 120
        while "epoch 1/500" not in _aegis(tmp_path, "logs", "X").stdout:
            assert time.time() < deadline
            time.sleep(0.5)
        listing = _aegis(tmp_path, "list").stdout.splitlines()
        assert listing[1].split()[:3] == ["X", "torchrun" if gang else "local", "running"]
        if gang:
            assert _aegis(tmp_path, "logs", "X", "--replica", "rank1").returncode == 0

        started = time.time()
        cancel = _aegis(tmp_path, "cancel", "X")
        assert cancel.returncode == 0, cancel.stderr
        assert cancel.stdout.strip() == "cancelled"
        assert proc.wait(timeout=60) == 143
        assert time.time() - started < 60
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    status = _aegis(tmp_path, "status", "X").stdout.splitlines()
    assert status[0] == "cancelled"
    run_dir = tmp_path / "train" / "runs" / "X"
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] > 0
    record = json.loads((run_dir / "summary.json").read_text())
    assert record["attempts"][-1]["status"] == "cancelled"


@pytest.mark.parametrize("recorded,code", [("completed", 0), ("failed", 1), ("preempted", 143)])
def test_logs_follow_ends_with_the_jobs_exit_code(tmp_path, capsys, recorded, code):
    _run_dir(tmp_path, "r", pid=_dead_pid(), log="only line\n",
             record={"status": recorded, "attempts": [{"status": recorded, "cause": "x"}]})
    assert main(["--root", str(tmp_path), "logs", "r", "--follow"]) == code
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["only line"]
    assert captured.err.startswith("run r ")
