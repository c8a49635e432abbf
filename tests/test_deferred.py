"""A sweep of jobs that run elsewhere is followed together (aegis.launch.deferred): SLURM and
every Kubernetes kind share this one follower since the k8s copy was merged into it."""

from __future__ import annotations

import _thread
import signal
import threading

import pytest

from aegis.launch.deferred import Deferred, follow_all


@pytest.fixture()
def ctrl_c_raises():
    """Python's own SIGINT handler (KeyboardInterrupt), whatever an earlier test installed."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_every_job_is_followed_at_once_and_the_worst_exit_code_wins(capsys):
    started = threading.Barrier(3, timeout=10)  # all three followers run at the same time

    def ends_with(code):
        def follow():
            started.wait()
            return code
        return follow

    def unreachable():
        started.wait()
        raise RuntimeError("the API server went away")

    code = follow_all([Deferred("run a (SLURM job 1)", ends_with(0)), Deferred("run b (SLURM job 2)", ends_with(3)),
                       Deferred("PyTorchJob ns/c (run c)", unreachable)])
    assert code == 3
    err = capsys.readouterr().err.splitlines()
    assert err == ["Sweep outcome:", "  run a (SLURM job 1): succeeded", "  run b (SLURM job 2): failed (exit code 3)",
                   "  PyTorchJob ns/c (run c): failed (exit code 1): could not follow: the API server went away"]


def test_ctrl_c_stops_following_never_the_jobs_and_says_how_to_reattach(capsys, ctrl_c_raises):
    release = threading.Event()
    interrupted = []

    def follow():
        release.wait(30)
        return 0

    def interrupt():
        interrupted.append(True)
        release.set()

    threading.Timer(0.3, _thread.interrupt_main).start()  # Ctrl-C while both are followed
    code = follow_all([Deferred("job 1", follow, interrupt=interrupt, reattach=lambda: "job 1 goes on: reattach 1"),
                       Deferred("job 2", follow)])
    assert code == 130 and interrupted == [True]
    assert capsys.readouterr().err.splitlines() == ["job 1 goes on: reattach 1"]


def test_without_reattach_hints_ctrl_c_says_the_jobs_go_on(capsys, ctrl_c_raises):
    release = threading.Event()
    threading.Timer(0.3, _thread.interrupt_main).start()
    try:
        assert follow_all([Deferred("job", lambda: release.wait(30) and 0)]) == 130
    finally:
        release.set()
    assert "the jobs go on" in capsys.readouterr().err
