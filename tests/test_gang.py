"""A gang's exit code as a scheduler reads it, and SIGTERM in the phases after fit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from aegis.core.rank_notes import PREEMPTED_EXIT_CODE, RankNote
from aegis.launch.gang import Supervisor, gang_exit_code, main
from aegis.training.signals import Preempted, SigtermOutsideFit


def note(rank, code, status="x"):
    return RankNote(rank, code, status)


@pytest.mark.parametrize("child, notes, signalled, expected", [
    (0, [], False, 0),
    # torchrun exits 1 after its ranks checkpointed a preemption: retryable
    (1, [note(0, 143), note(1, 143)], False, PREEMPTED_EXIT_CODE),
    (1, [note(0, 143), note(1, 143)], True, PREEMPTED_EXIT_CODE),
    # a rank whose peer vanished (143) next to one that failed on its own (1): the failure wins
    (1, [note(0, 143), note(1, 1)], False, 1),
    (1, [note(0, 2), note(1, 1)], True, 2),
    # a rank that died without a word while nobody asked the gang to stop: a bug, not retried
    (1, [note(0, 143), note(1, None)], False, 1),
    # ... but when the gang was told to stop, torchrun's SIGKILL after its timeout explains it
    (1, [note(0, 143), note(1, None)], True, PREEMPTED_EXIT_CODE),
    # stopped before any rank started: nothing half-done, retryable
    (1, [], True, PREEMPTED_EXIT_CODE),
    (1, [], False, 1),
    (-9, [], False, 137),
    # the ranks had finished when torchrun was told to stop (it then exits 1): the work is done
    (1, [note(0, 0), note(1, 0)], True, 0),
])
def test_gang_exit_code(child, notes, signalled, expected):
    assert gang_exit_code(child, notes, signalled) == expected


def _rank_script(body: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(body)]


def test_the_supervisor_turns_ranks_notes_into_the_gang_exit_code(tmp_path):
    # Stands for torchrun: two ranks note a preemption, then it exits 1 as torchrun does.
    child = _rank_script("""
        import sys
        from aegis.core.rank_notes import note_exit, note_start
        for rank in (0, 1):
            note_start(rank)
            note_exit(rank, 143, "preempted")
        sys.exit(1)
    """)
    assert Supervisor(child).start().wait() == PREEMPTED_EXIT_CODE


def test_a_rank_that_never_noted_its_end_fails_the_gang():
    child = _rank_script("""
        import os
        from aegis.core.rank_notes import note_exit, note_start
        note_start(0); note_exit(0, 143, "failed")
        note_start(1)
        os._exit(1)
    """)
    assert Supervisor(child).start().wait() == 1


def test_sigterm_to_the_supervisor_reaches_the_gang_and_exits_143(tmp_path):
    ready = tmp_path / "ready"
    child = _rank_script(f"""
        import signal, sys, time, pathlib
        from aegis.core.rank_notes import note_exit, note_start
        note_start(0)
        def stop(*_):
            note_exit(0, 143, "preempted")
            sys.exit(1)  # torchrun's exit code when told to stop
        signal.signal(signal.SIGTERM, stop)
        pathlib.Path({str(ready)!r}).touch()
        time.sleep(60)
    """)
    script = _rank_script(f"""
        import sys
        from aegis.launch.gang import main
        sys.exit(main({child!r}))
    """)
    proc = subprocess.Popen(script)
    deadline = time.time() + 30
    while not ready.exists():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == PREEMPTED_EXIT_CODE


def test_the_supervisor_gives_torchrun_the_grace_period(monkeypatch):
    monkeypatch.setenv("AEGIS_TERMINATION_GRACE_S", "90")
    monkeypatch.delenv("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", raising=False)
    child = [sys.executable, "-c", "import os, sys; sys.exit(int(os.environ['TORCH_ELASTIC_SHUTDOWN_TIMEOUT']))"]
    assert Supervisor(child).start().wait() == 88


def test_a_command_that_cannot_start_is_one_line(capsys):
    assert main(["/nonexistent/torchrun"]) == 127
    assert "cannot start '/nonexistent/torchrun'" in capsys.readouterr().err


def _sigterm_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_during_test_abandons_it_at_once():
    with SigtermOutsideFit() as sigterm:
        sigterm.arm()
        with pytest.raises(Preempted, match="during test"):
            with sigterm.phase_of("test"):
                _sigterm_self()
                time.sleep(5)
                pytest.fail("the test phase went on after SIGTERM")
    assert sigterm.outcome == "abandoned test"


def test_sigterm_during_registration_lets_it_finish_within_the_grace_period(monkeypatch):
    monkeypatch.setenv("AEGIS_TERMINATION_GRACE_S", "30")
    with SigtermOutsideFit() as sigterm:
        sigterm.arm()
        with sigterm.finishing("model registration"):
            _sigterm_self()
            time.sleep(0.3)  # the registration's remaining work
            finished = True
    assert finished
    assert sigterm.outcome == "finished model registration within the grace period"


def test_registration_past_the_grace_period_is_abandoned_before_the_kill(monkeypatch):
    monkeypatch.setenv("AEGIS_TERMINATION_GRACE_S", "5.5")  # 0.5 s left after the exit margin
    started = time.monotonic()
    with SigtermOutsideFit() as sigterm:
        sigterm.arm()
        with pytest.raises(Preempted, match="model registration"):
            with sigterm.finishing("model registration"):
                _sigterm_self()
                time.sleep(10)  # a registry that hangs
    assert time.monotonic() - started < 3
    assert sigterm.outcome == "abandoned model registration"


def test_sigterm_held_in_start_up_stops_the_run_when_armed():
    with SigtermOutsideFit() as sigterm:
        _sigterm_self()
        time.sleep(0.05)
        with pytest.raises(Preempted, match="start-up"):
            sigterm.arm()


def test_a_rank_whose_fit_raised_records_before_torchruns_sigterm_can_interrupt_it(monkeypatch):
    """Issue 24 item 4: a rank that lost its peer was writing its failure record when torchrun
    SIGTERMed the gang; the handler raised "Preempted: SIGTERM during the end of the run (after
    training)" over the record (and its real cause), with ~120 lines of traceback."""
    monkeypatch.setenv("AEGIS_TERMINATION_GRACE_S", "30")
    recorded = False
    with SigtermOutsideFit() as sigterm:
        sigterm.arm()
        try:
            with sigterm.fitting():
                raise ConnectionResetError("Connection reset by peer")
        except ConnectionResetError:
            assert sigterm.phase == "training"  # where it was, not "after training"
            _sigterm_self()  # torchrun stops the gang while this rank writes its record
            time.sleep(0.3)
            recorded = True
    assert recorded and sigterm.outcome is None


def test_a_record_that_hangs_after_fit_raised_is_abandoned_within_the_grace_period(monkeypatch):
    monkeypatch.setenv("AEGIS_TERMINATION_GRACE_S", "5.5")  # 0.5 s left after the exit margin
    started = time.monotonic()
    with SigtermOutsideFit() as sigterm:
        sigterm.arm()
        with pytest.raises(Preempted, match="during training"):
            try:
                with sigterm.fitting():
                    raise RuntimeError("boom")
            except RuntimeError:
                _sigterm_self()
                time.sleep(10)  # a record that cannot be written (a hung file system)
    assert time.monotonic() - started < 3
    assert signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.default_int_handler, None)


def test_leaving_the_process_group_never_imports_torch(monkeypatch):
    """A SIGTERM can cut torch's import short (a pod stopped during start-up); re-importing
    it on the way out then fails with a circular-import traceback instead of exit 143."""
    from aegis.training.run import _leave_process_group

    monkeypatch.setitem(sys.modules, "torch.distributed", None)  # `import torch.distributed` raises
    _leave_process_group()


@pytest.mark.slow
def test_a_sigterm_to_torchrun_under_a_supervisor_is_exit_143_without_torchs_traceback(tmp_path):
    """Issue 24 item 4: a clean SIGTERM of a torchrun gang ended with torch's 25-line
    ``SignalException: Process N got signal: 15`` traceback from the parent."""
    script = tmp_path / "rank.py"
    script.write_text("import time\nprint('rank started', flush=True)\ntime.sleep(120)\n")
    notes = tmp_path / "notes"
    notes.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "aegis.launch.elastic", "--standalone", "--nproc-per-node=1",
                             str(script)], env={**os.environ, "AEGIS_GANG_NOTES": str(notes)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "rank started"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert "Traceback" not in err and "SignalException" not in err and "death signal" not in err, err
