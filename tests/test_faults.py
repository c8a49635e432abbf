"""The fault group (fault=raise|exit|kill|hang) and the pieces of failure triage, fast.

The gangs that really fail on purpose are in test_fault_gang.py (slow tier)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from aegis.config.validation import problems
from aegis.failures.record import Failure
from aegis.failures.report import merge_into_summary
from aegis.core.rank_notes import RankNote
from aegis.failures.triage import gang_failure
from helpers import REPO, run_train


# ------------------------------------------------------------------ config


def test_no_fault_by_default(compose):
    cfg = compose()
    assert cfg.fault.kind == "none" and set(cfg.fault) == {"kind"}
    assert problems(cfg).sentences == []


@pytest.mark.parametrize("overrides, sentence", [
    (["fault=raise", "fault.rank=2", "launcher=torchrun", "strategy=ddp"],
     "fault.rank=2 is beyond the run's 2 ranks: expected 0 <= fault.rank < 2 (the world size of launcher=torchrun)."),
    (["fault=kill", "fault.rank=1"],
     "fault.rank=1 is beyond the run's 1 rank: expected 0 <= fault.rank < 1 (the world size of launcher=local)."),
    (["fault=raise", "fault.rank=4", "launcher=trainjob", "strategy=ddp", "launcher.image=ghcr.io/a/b:1",
      "launcher.nodes=2", "launcher.nproc_per_node=2"],
     "fault.rank=4 is beyond the run's 4 ranks: expected 0 <= fault.rank < 4 (the world size of launcher=trainjob)."),
    (["fault=raise", "fault.step=-1"], "fault.step=-1 is invalid: expected a number >= 0."),
    (["fault=exit", "fault.exit_code=0"], "fault.exit_code=0 is invalid: expected a whole number from 1 to 255."),
    (["fault=hang", "fault.kind=raise"],
     "fault.kind='raise' is invalid: expected 'hang': the kind is the option, chosen with "
     "fault=none|raise|exit|kill|hang."),
])
def test_bad_fault_values_are_one_sentence(compose, overrides, sentence):
    assert problems(compose(*overrides)).sentences == [sentence]


def test_a_rank_of_a_pytorchjob_gang_is_in_range(compose):
    cfg = compose("fault=kill", "fault.rank=3", "launcher=pytorchjob", "strategy=ddp", "launcher.nodes=2",
                  "launcher.nproc_per_node=2", "launcher.image=registry.example/aegis:1")
    assert not [s for s in problems(cfg).sentences if "fault" in s]


def test_a_bad_fault_stops_train_py_before_anything_exists(tmp_path):
    result = run_train(["fault=raise", "fault.rank=5", "launcher=torchrun", "strategy=ddp"], tmp_path, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: fault.rank=5 is beyond the run's 2 ranks: expected 0 <= fault.rank < 2 (the world size of "
        "launcher=torchrun)."]
    assert not list(tmp_path.iterdir())
    unknown = run_train(["fault=explode"], tmp_path, timeout=60)
    assert unknown.returncode == 1 and "fault=explode is not an option of the fault group" in unknown.stderr


def test_composing_a_fault_never_imports_torch():
    code = subprocess.run([sys.executable, "-X", "importtime", "train.py", "fault=kill", "fault.rank=1",
                           "launcher=pytorchjob", "strategy=ddp", "launcher.dry_run=true",
                           "launcher.image=registry.example/aegis:1"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert code.returncode == 0, code.stderr[-2000:]
    assert not [line for line in code.stderr.splitlines() if line.rstrip().endswith((" torch", " lightning"))]


# ------------------------------------------------------------------ the callback


def _fault(**keys):
    base = {"kind": "raise", "rank": 1, "step": 3, "once": True, "message": "boom", "exit_code": 7}
    return OmegaConf.create({**base, **keys})


def _batch(callback, rank, step):
    callback.on_train_batch_start(SimpleNamespace(global_rank=rank, global_step=step), None, None, 0)


def test_the_fault_fires_on_its_rank_once_the_step_is_reached(tmp_path):
    from aegis.training.faults import FaultInjection, InjectedFault

    callback = FaultInjection(_fault(), tmp_path)
    _batch(callback, rank=0, step=5)  # another rank
    _batch(callback, rank=1, step=2)  # before the step
    with pytest.raises(InjectedFault, match="^boom$"):
        _batch(callback, rank=1, step=3)
    assert json.loads((tmp_path / "fault.json").read_text())["step"] == 3


def test_once_means_a_later_attempt_of_the_run_dir_goes_on(tmp_path):
    from aegis.training.faults import FaultInjection, InjectedFault

    with pytest.raises(InjectedFault):
        _batch(FaultInjection(_fault(), tmp_path), rank=1, step=4)
    _batch(FaultInjection(_fault(), tmp_path), rank=1, step=4)  # the restart: no second fault
    with pytest.raises(InjectedFault):  # another fault in the same run dir is a new drill
        _batch(FaultInjection(_fault(step=6), tmp_path), rank=1, step=6)
    with pytest.raises(InjectedFault):  # once=false: every attempt
        _batch(FaultInjection(_fault(step=6, once=False), tmp_path), rank=1, step=6)


def test_exit_exits_with_its_code(tmp_path):
    from aegis.training.faults import FaultInjection

    with pytest.raises(SystemExit) as stop:
        _batch(FaultInjection(_fault(kind="exit"), tmp_path), rank=1, step=3)
    assert stop.value.code == 7


def test_no_callback_without_a_fault(tmp_path):
    from aegis.training.faults import fault_callbacks

    assert fault_callbacks(OmegaConf.create({"fault": {"kind": "none"}}), tmp_path) == []
    assert len(fault_callbacks(OmegaConf.create({"fault": dict(_fault())}), tmp_path)) == 1


def _fire_in_child(tmp_path, kind):
    script = textwrap.dedent(f"""
        from pathlib import Path
        from omegaconf import OmegaConf
        from aegis.training.faults import FaultInjection
        fault = OmegaConf.create({{"kind": "{kind}", "rank": 0, "step": 0, "once": True}})
        FaultInjection(fault, Path({str(tmp_path)!r})).fire(0)
    """)
    return subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)


@pytest.mark.slow  # a child that imports torch (~5 s of CPU); the slow tier's drills kill whole runs
def test_kill_is_sigkill(tmp_path):
    child = _fire_in_child(tmp_path, "kill")
    assert child.wait(timeout=60) == -signal.SIGKILL


@pytest.mark.slow  # a child that imports torch and waits out SIGTERM (~6 s)
def test_hang_ignores_sigterm_until_killed(tmp_path):
    import time

    child = _fire_in_child(tmp_path, "hang")
    try:
        for line in child.stderr:  # Python's last-resort handler prints the fault's line as it fires
            if "Injected fault" in line:
                break
        time.sleep(0.5)  # from that line to SIGTERM ignored: one call
        child.send_signal(signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=2)
    finally:
        child.kill()
    assert child.wait(timeout=10) == -signal.SIGKILL


# ------------------------------------------------------------------ triage


def _raised(rank, exception="InjectedFault", message="boom"):
    return Failure(f"{exception}: {message}", rank=rank, exception=exception, message=message, exit_code=1)


def _timed_out(rank):
    text = "[gloo/unbound_buffer.cc:78] Timed out waiting 5000ms for recv operation to complete"
    return Failure(f"a collective timed out waiting for another rank of the gang (this rank saw: RuntimeError: "
                   f"{text})", rank=rank, exception="RuntimeError", message=text, exit_code=143)


def _lost_peer(rank):
    return Failure("another rank of the gang stopped (this rank saw: Connection closed by peer)", rank=rank,
                   exception="DistBackendError", message="Connection closed by peer", exit_code=143)


def test_the_rank_that_raised_is_the_cause_not_the_one_that_lost_it():
    torchrun = [{"rank": 0, "exit_code": 143, "signal": None, "order": 0},
                {"rank": 1, "exit_code": 1, "signal": None, "order": 1}]
    failure = gang_failure(torchrun, {0: _lost_peer(0), 1: _raised(1)})
    assert (failure.rank, failure.exception, failure.message) == (1, "InjectedFault", "boom")


def test_a_killed_rank_is_named_with_its_signal_and_its_log(tmp_path):
    (tmp_path / "train.rank1.log").write_text("step 4\nInjected fault: rank 1 sends itself SIGKILL\n")
    torchrun = [{"rank": 1, "exit_code": -9, "signal": "SIGKILL", "order": 0},
                {"rank": 0, "exit_code": 143, "signal": None, "order": 1}]
    notes = [RankNote(0, 143, "preempted"), RankNote(1, None, "running")]
    failure = gang_failure(torchrun, {}, notes, run_dir=tmp_path)
    assert (failure.rank, failure.signal) == (1, "SIGKILL")
    assert "killed by SIGKILL" in failure.paragraph()
    assert failure.log_tail[-1] == "Injected fault: rank 1 sends itself SIGKILL"


def test_a_hang_names_the_rank_that_stopped_responding():
    # rank 0 timed out in its collective; torchrun then SIGKILLed rank 1, which ignored SIGTERM
    torchrun = [{"rank": 0, "exit_code": 143, "signal": None, "order": 0},
                {"rank": 1, "exit_code": -9, "signal": "SIGKILL", "order": 1}]
    failure = gang_failure(torchrun, {0: _timed_out(0)}, [RankNote(0, 143, "failed"), RankNote(1, None, "running")])
    assert failure.rank == 1
    assert failure.cause.startswith("stopped responding: rank 0's collective timed out waiting for it")


def test_a_hang_is_known_from_the_notes_alone():
    failure = gang_failure([], {0: _timed_out(0), 2: _timed_out(2)},
                           [RankNote(0, 143, "failed"), RankNote(1, None, "running"), RankNote(2, 143, "failed")])
    assert failure.rank == 1 and "stopped responding" in failure.cause


def test_an_error_file_is_read_as_torch_reads_it(tmp_path, monkeypatch):
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    from aegis.failures.rank import failure_in_error_file, failure_of, write_error_file

    path = tmp_path / "error.json"
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(path))
    try:
        raise ValueError("bad batch 7")
    except ValueError as exc:
        write_error_file(exc, failure_of(exc, "bad batch 7", 1, 1))
    seen = ProcessFailure(local_rank=1, pid=1, exitcode=1, error_file=str(path))
    assert seen.message["message"] == "ValueError: bad batch 7"  # torchrun's own report shows it
    back = failure_in_error_file(seen.error_file_data)
    assert (back.rank, back.exception, back.message, back.cause) == (1, "ValueError", "bad batch 7",
                                                                      "ValueError: bad batch 7")
    assert "raise ValueError" in "\n".join(back.log_tail)


# ------------------------------------------------------------------ delivery


def _summary(run_dir, **top):
    attempts = top.pop("attempts")
    (run_dir / "summary.json").write_text(json.dumps({**top, "attempts": attempts}))


def test_the_supervisor_merges_a_killed_rank_into_summary_json(tmp_path):
    _summary(tmp_path, status="preempted", attempts=[{"attempt": 1, "status": "preempted"}])
    failure = Failure("killed by SIGKILL", rank=1, signal="SIGKILL")
    assert merge_into_summary(tmp_path, failure)
    record = json.loads((tmp_path / "summary.json").read_text())
    assert record["status"] == "failed" and record["failure"]["rank"] == 1 and record["failure"]["signal"] == "SIGKILL"
    assert record["attempts"][-1]["status"] == "failed"


def test_the_gangs_failure_replaces_what_rank_0_wrote_of_its_lost_peer(tmp_path):
    # rank 0 (another pod) recorded its own end first: the lost peer, retryable; rank 3 raised
    lost = _lost_peer(0)
    _summary(tmp_path, status="failed", error="DistBackendError: Connection closed by peer", cause=lost.cause,
             retryable=True, failure=lost.as_dict(),
             attempts=[{"attempt": 1, "status": "failed", "error": "DistBackendError: Connection closed by peer"}])
    assert merge_into_summary(tmp_path, _raised(3))
    record = json.loads((tmp_path / "summary.json").read_text())
    assert (record["status"], record["error"], record["failure"]["rank"]) == ("failed", "InjectedFault: boom", 3)
    assert "retryable" not in record and record["attempts"][-1]["error"] == "InjectedFault: boom"


def test_rank_0_that_only_lost_its_peer_leaves_the_cause_another_pod_recorded(tmp_path):
    # Two pods: the worker's supervisor recorded rank 3's failure for this attempt before rank 0
    # (on the master) got round to writing its own end; rank 0's lost peer must not replace it.
    from aegis.training.record import RunRecord

    record = RunRecord(tmp_path, rank_zero=True)
    record.write("running")
    assert merge_into_summary(tmp_path, _raised(3))
    lost = _lost_peer(0)
    record.write("failed", unless_explained=True, error="DistBackendError: Connection closed by peer",
                 cause=lost.cause, retryable=True, failure=lost.as_dict())
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["failure"]["rank"] == 3 and written["attempts"][-1]["failure"]["rank"] == 3
    assert "retryable" not in written and len(written["attempts"]) == 1

    alone = tmp_path / "alone"  # nobody recorded a cause: rank 0 writes its own end
    alone.mkdir()
    record = RunRecord(alone, rank_zero=True)
    record.write("running")
    record.write("failed", unless_explained=True, cause=lost.cause, retryable=True, failure=lost.as_dict())
    assert json.loads((alone / "summary.json").read_text())["retryable"] is True


def test_a_restart_is_recorded_with_its_cause_and_a_completed_run_stays_completed(tmp_path):
    # rank 0 recorded the attempt as failed (it lost its peer); the restart's cause is the killed rank
    _summary(tmp_path, status="completed", attempts=[{"attempt": 1, "status": "failed"},
                                                     {"attempt": 2, "status": "completed"}])
    merge_into_summary(tmp_path, None, first_attempt=1, restarts={0: Failure("killed by SIGKILL", rank=1,
                                                                            signal="SIGKILL")})
    record = json.loads((tmp_path / "summary.json").read_text())
    assert record["status"] == "completed"
    assert record["restarts"] == [{"attempt": 1, "cause": "killed by SIGKILL", "rank": 1}]
    assert record["attempts"][0]["cause"] == "killed by SIGKILL" and record["attempts"][0]["status"] == "killed"


def test_the_supervisor_reports_what_the_gang_recorded(tmp_path):
    # Stands for aegis.launch.elastic: rank 1 raised and noted it, torchrun listed it, exit 1.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _summary(run_dir, status="failed", attempts=[{"attempt": 1, "status": "failed"}])
    child = [sys.executable, "-c", textwrap.dedent("""
        import os, sys
        from aegis.failures.record import Failure
        from aegis.launch.elastic import write_attempt
        from aegis.core.rank_notes import note_exit, note_start
        from aegis.failures.rank import note_failure
        from pathlib import Path
        from types import SimpleNamespace
        for rank in (0, 1):
            note_start(rank)
        note_failure(1, Failure("ValueError: bad batch", rank=1, exception="ValueError", message="bad batch"))
        note_exit(1, 1, "crashed")
        failure = SimpleNamespace(local_rank=1, exitcode=1, error_file="<N/A>", error_file_data={}, timestamp=0,
                                  signal_name=lambda: None)
        write_attempt(Path(os.environ["AEGIS_GANG_NOTES"]), 0, {1: failure})
        sys.exit(1)
    """)]
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from aegis.launch.gang import Supervisor
        sys.exit(Supervisor({child!r}, run_dir=Path({str(run_dir)!r})).start().wait())
    """)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "Run failed: rank 1: ValueError: bad batch. (exit code 1)"
    record = json.loads((run_dir / "summary.json").read_text())
    assert record["failure"]["rank"] == 1 and record["failure"]["message"] == "bad batch"


def test_torchrun_runs_unobserved_when_its_agent_cannot_be(monkeypatch, tmp_path):
    # docs/internals.md: the agent hook is private; without it torchrun runs as it is
    import torch.distributed.run as torchrun

    from aegis.launch import elastic

    ran = []
    monkeypatch.setenv("AEGIS_GANG_NOTES", str(tmp_path))
    monkeypatch.setattr(elastic, "_observe_agent", lambda folder: (_ for _ in ()).throw(AttributeError("moved")))
    monkeypatch.setattr(torchrun, "main", lambda args: ran.append(args))
    assert elastic.main(["--standalone", "train.py"]) == 0 and ran == [["--standalone", "train.py"]]


def test_the_observed_agent_records_each_failed_attempt(monkeypatch, tmp_path):
    import torch.distributed.launcher.api as launcher_api

    from aegis.launch import elastic

    failure = SimpleNamespace(local_rank=0, exitcode=-9, error_file="<N/A>", error_file_data={}, timestamp=5,
                              signal_name=lambda: "SIGKILL")

    class Agent:
        _remaining_restarts = 0

        def _monitor_workers(self, worker_group):
            return SimpleNamespace(is_failed=lambda: True, failures={3: failure})

    monkeypatch.setattr(launcher_api, "LocalElasticAgent", Agent)
    elastic._observe_agent(tmp_path)
    group = SimpleNamespace(spec=SimpleNamespace(max_restarts=1), group_rank=1)
    launcher_api.LocalElasticAgent()._monitor_workers(group)
    [(restart, attempt)] = elastic.read_attempts(tmp_path).items()
    assert restart == 1 and attempt["failures"] == [{"rank": 3, "local_rank": 0, "exit_code": -9, "signal": "SIGKILL",
                                                     "error_file_data": None, "timestamp": 5, "order": 0}]


def test_a_pods_supervisor_runs_torchrun_observed_and_knows_the_run_dir(monkeypatch):
    from pathlib import Path

    from aegis.launch import gang

    seen = {}

    class Fake:
        def __init__(self, argv, run_dir=None):
            seen.update(argv=argv, run_dir=run_dir)

        def start(self):
            return self

        def wait(self):
            return 0

    monkeypatch.setattr(gang, "Supervisor", Fake)
    assert gang.main(["torchrun", "--nnodes=2", "train.py", "launcher=local", "hydra.run.dir=/outputs/r1"]) == 0
    assert seen["argv"][:3] == [sys.executable, "-m", "aegis.launch.elastic"]
    assert seen["argv"][3:] == ["--nnodes=2", "train.py", "launcher=local", "hydra.run.dir=/outputs/r1"]
    assert seen["run_dir"] == Path("/outputs/r1")


def test_an_exit_is_named_with_where_it_was_called():
    from aegis.failures.rank import failure_of

    def give_up():
        sys.exit(3)

    try:
        give_up()
    except SystemExit as exc:
        failure = failure_of(exc, "exited with code 3", 1, 3)
    assert failure.cause.startswith("exited with code 3: sys.exit(3) in give_up (")
    assert failure.paragraph().startswith("Run failed: rank 1: exited with code 3: sys.exit(3) in give_up")


def test_only_node_zero_or_the_node_that_knows_the_cause_writes_summary_json(monkeypatch):
    from aegis.launch.gang import _records_for_the_gang

    monkeypatch.setenv("PET_NODE_RANK", "1")
    assert _records_for_the_gang(_raised(3))
    assert not _records_for_the_gang(_lost_peer(2))
    assert not _records_for_the_gang(_timed_out(2))
    assert not _records_for_the_gang(None)  # a restart's causes: node 0 records them
    monkeypatch.setenv("PET_NODE_RANK", "0")
    assert _records_for_the_gang(_lost_peer(0))


def test_a_restarted_gang_joins_under_keys_of_its_own(monkeypatch):
    import torch.distributed as dist

    from aegis.training.restart_store import join_restarted_gang

    calls = []
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "TCPStore", lambda *a, **k: ("store", a))
    monkeypatch.setattr(dist, "PrefixStore", lambda prefix, store: ("prefixed", prefix))
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **k: calls.append((backend, k)))
    env = {"TORCHELASTIC_USE_AGENT_STORE": "True", "WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": "29500"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from datetime import timedelta

    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    assert not join_restarted_gang(None, False, timedelta(seconds=5)) and calls == []  # first attempt: Lightning's
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "2")
    assert join_restarted_gang(None, False, timedelta(seconds=5))
    [(backend, keys)] = calls
    assert backend == "gloo" and keys["store"] == ("prefixed", "aegis/restart_2") and keys["rank"] == 1


def test_a_local_run_ends_with_its_paragraph_after_the_traceback(tmp_path, capsys, monkeypatch):
    from aegis.launch.local.launcher import SUPERVISED_ENV, LocalLauncher

    _summary(tmp_path, status="failed", attempts=[{"attempt": 1, "status": "failed", "failure": _raised(None).as_dict()}])
    monkeypatch.delenv(SUPERVISED_ENV, raising=False)
    try:
        raise RuntimeError("the traceback")
    except RuntimeError:
        assert LocalLauncher._report(tmp_path, 0)
        monkeypatch.setenv(SUPERVISED_ENV, "1")  # a rank of a gang: its supervisor reports
        assert not LocalLauncher._report(tmp_path, 0)
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "Run failed: the run: InjectedFault: boom. (exit code 1)"
    assert "RuntimeError: the traceback" in err


def test_a_preempted_gang_is_not_reported_failed(tmp_path):
    # 143: every rank checkpointed a preemption (or lost a peer another node reports): retryable
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _summary(run_dir, status="preempted", attempts=[{"attempt": 1, "status": "preempted"}])
    child = [sys.executable, "-c", textwrap.dedent("""
        import sys
        from aegis.core.rank_notes import note_exit, note_start
        for rank in (0, 1):
            note_start(rank)
            note_exit(rank, 143, "preempted")
        sys.exit(1)
    """)]
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from aegis.launch.gang import Supervisor
        sys.exit(Supervisor({child!r}, run_dir=Path({str(run_dir)!r})).start().wait())
    """)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 143 and "Run failed" not in result.stderr
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "preempted"


def test_a_node_whose_ranks_only_lost_their_peer_reports_no_restart(tmp_path):
    # The master pod of a PyTorchJob whose worker pod's rank failed: its own ranks lost their
    # peer (143, retryable); no restart happened, so none is printed or recorded, and the
    # summary the failing node wrote is left alone.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    written = {"status": "failed", "attempts": [{"attempt": 1, "status": "failed", "failure": _raised(3).as_dict()}],
               "failure": _raised(3).as_dict()}
    (run_dir / "summary.json").write_text(json.dumps(written))
    child = [sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from aegis.failures.record import Failure
        from aegis.core.rank_notes import note_exit, note_start
        from aegis.failures.rank import note_failure
        for rank in (0, 1):
            note_start(rank)
            note_failure(rank, Failure.from_dict({_lost_peer(0).as_dict()!r}))
            note_exit(rank, 143, "failed")
        sys.exit(1)
    """)]
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from aegis.launch.gang import Supervisor
        sys.exit(Supervisor({child!r}, run_dir=Path({str(run_dir)!r})).start().wait())
    """)], capture_output=True, text=True, timeout=60, env={**os.environ, "PET_NODE_RANK": "0"})
    assert result.returncode == 143, result.stderr
    assert "Restart" not in result.stderr and "Run failed" not in result.stderr, result.stderr
    record = json.loads((run_dir / "summary.json").read_text())
    assert "restarts" not in record and not record["attempts"][0].get("restarted"), record
    assert record["failure"]["rank"] == 3 and record["attempts"][0]["failure"]["rank"] == 3


def test_torchruns_sigterm_to_a_rank_that_raised_is_no_part_of_its_cause():
    # rank 2 lost its peer and exited first; torchrun then SIGTERMed rank 3 while it handled its own error
    torchrun = [{"rank": 2, "exit_code": 143, "signal": None, "order": 0},
                {"rank": 3, "exit_code": 1, "signal": "SIGTERM", "order": 1}]
    failure = gang_failure(torchrun, {2: _lost_peer(2), 3: _raised(3)})
    assert (failure.rank, failure.exception, failure.signal, failure.exit_code) == (3, "InjectedFault", None, 1)
    assert "SIGTERM" not in failure.paragraph()


def test_a_rank_that_vanished_is_the_cause_not_the_peer_torchrun_then_stopped():
    # rank 1 os._exit(1)s; rank 0 records the lost peer, then torchrun's SIGTERM ends it (-15)
    torchrun = [{"rank": 1, "exit_code": 1, "signal": None, "order": 0},
                {"rank": 0, "exit_code": -15, "signal": "SIGTERM", "order": 1}]
    failure = gang_failure(torchrun, {0: _lost_peer(0)}, [RankNote(0, None, "running"), RankNote(1, None, "running")])
    assert failure.rank == 1 and failure.exit_code == 1
    assert failure.cause.startswith("exited with code 1 without saying why")
