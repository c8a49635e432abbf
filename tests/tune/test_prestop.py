"""The Ray pods' preStop hook (aegis.tune.prestop) with real processes: it SIGTERMs the search's
driver only (found by the override the RayJob's entrypoint pins), waits for the driver and for
this node's trials to end, and returns within its budget whatever happens."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

from aegis.tune import prestop

# A stand-in driver: on SIGTERM it takes a moment (Ray Tune saving the search), marks the file
# and exits 130, as the search's driver does.
DRIVER = ("import signal, sys, time, pathlib\n"
          "def stop(*_):\n    time.sleep(0.5); pathlib.Path(sys.argv[1]).write_text('interrupted'); sys.exit(130)\n"
          "signal.signal(signal.SIGTERM, stop)\nprint('ready', flush=True)\n"
          "while True: time.sleep(0.1)\n")
DEAF = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"


def _start(code: str, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_the_driver_is_signalled_and_waited_for_and_other_processes_are_left_alone(tmp_path):
    sweep = tmp_path / "multiruns" / "r1"
    sweep.mkdir(parents=True)
    marker = tmp_path / "driver.out"
    driver = _start(DRIVER, str(marker), "train.py", "run_id=r1", prestop.driver_token(str(sweep)))
    # Another search's driver, and a shell whose one argument only contains the override.
    other = _start(DRIVER, str(tmp_path / "other.out"), prestop.driver_token(str(tmp_path / "multiruns" / "r2")))
    shell = _start(DRIVER, str(tmp_path / "shell.out"), f"python train.py {prestop.driver_token(str(sweep))}")
    # A wrapper passing the words on to the driver it started: the driver is signalled, not it.
    wrapper = subprocess.Popen([sys.executable, "-c", "import subprocess, sys; subprocess.run(sys.argv[1:])",
                                sys.executable, "-c", DRIVER, str(tmp_path / "inner.out"),
                                prestop.driver_token(str(sweep))], stdout=subprocess.PIPE, text=True)
    assert wrapper.stdout.readline().strip() == "ready"
    try:
        started = time.monotonic()
        signalled, left, busy = prestop.stop_search(str(sweep), budget_s=20)
        took = time.monotonic() - started
        assert len(signalled) == 2 and driver.pid in signalled and wrapper.pid not in signalled
        assert left == [] and busy == []
        assert driver.wait(timeout=5) == 130 and marker.read_text() == "interrupted"
        assert wrapper.wait(timeout=5) == 0 and (tmp_path / "inner.out").read_text() == "interrupted"
        assert 0.4 < took < 10
        assert other.poll() is None and shell.poll() is None
    finally:
        for proc in (driver, other, shell, wrapper):
            proc.kill()
            proc.wait()


def test_a_trial_still_training_on_this_node_is_waited_for_and_the_budget_is_kept(tmp_path):
    sweep = tmp_path / "multiruns" / "r3"
    trial = _start(DEAF)
    elsewhere = {"status": "running", "host": "another-pod", "pid": trial.pid}
    (sweep / "1").mkdir(parents=True)
    (sweep / "1" / "summary.json").write_text(json.dumps(elsewhere))  # another node's trial: not waited for
    try:
        assert prestop.running_trials(sweep) == []
        here = {"status": "running", "host": socket.gethostname(), "pid": trial.pid}
        (sweep / "2").mkdir()
        (sweep / "2" / "summary.json").write_text(json.dumps(here))
        assert prestop.running_trials(sweep) == [sweep / "2"]
        started = time.monotonic()
        signalled, left, busy = prestop.stop_search(str(sweep), budget_s=1.5)
        took = time.monotonic() - started
        assert signalled == [] and busy == [sweep / "2"] and 1.4 < took < 5  # gave up at the budget
        trial.kill()
        trial.wait()
        assert prestop.stop_search(str(sweep), budget_s=10)[2] == []  # a gone process is not waited for
    finally:
        trial.kill()
        trial.wait()


def test_the_hook_always_exits_0_and_says_what_it_did(tmp_path):
    done = subprocess.run([sys.executable, "-m", "aegis.tune.prestop", str(tmp_path / "nothing")],
                          capture_output=True, text=True, timeout=60,
                          env={"AEGIS_TERMINATION_GRACE_S": "10", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert "[aegis preStop] 0 search driver(s) signalled" in done.stdout
    assert subprocess.run([sys.executable, "-m", "aegis.tune.prestop"], capture_output=True, timeout=60).returncode == 0
