"""`python train.py` end to end, as users and pods run it.

Each of these starts ``python train.py`` (5-10 s apiece). The default tier keeps one
representative run; the rest are in the slow tier, with their behaviour also tested in
the default tier in-process or through a cheaper entrypoint run (named at each one).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from helpers import REPO, TRAIN, run_dirs, run_train, summary


@pytest.mark.slow  # progress lines in-process: tests/test_training.py::test_progress_is_a_bar_on_a_terminal_and_epoch_lines_otherwise
def test_default_config_reaches_095_test_accuracy_on_digits(tmp_path):
    result = run_train(["logger=csv"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    [run_dir] = run_dirs(tmp_path)
    record = summary(run_dir)
    assert record["metrics"]["test/acc"] >= 0.95
    assert record["epochs_completed"] == 20
    # Not a terminal: one plain line per epoch, no progress bar.
    assert result.stdout.count("epoch ") + result.stderr.count("epoch ") >= 20
    assert "it/s]" not in result.stdout + result.stderr


# The default tier's `python train.py` training run is the planted-secrets one
# (tests/test_secrets.py), which checks these same records.
@pytest.mark.slow
def test_smoke_run_records_everything_in_one_run_dir(tmp_path):
    result = run_train(["trainer=smoke"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    [run_dir] = run_dirs(tmp_path)
    record = summary(run_dir)
    assert record["status"] == "completed" and record["world_size"] == 1
    assert record["tracking"]["logger"] == "mlflow" and record["tracking"]["run_id"]
    assert record["tracking"]["registered_model"]["version"] == 1
    assert (tmp_path / "mlflow.db").is_file()  # embedded store under paths.root
    for name in ("config.yaml", "summary.json", "tracking.json", "train.log", ".hydra/overrides.yaml"):
        assert (run_dir / name).exists(), name


def _wait_for(proc: subprocess.Popen, log_path, needle: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if needle in log_path.read_text():
            return
        if proc.poll() is not None:
            raise AssertionError(f"exited early ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
        time.sleep(0.1)
    raise AssertionError(f"never saw {needle!r}:\n{log_path.read_text()[-3000:]}")


@pytest.mark.slow  # in-process: tests/test_nothing_lost.py::test_sigterm_mid_epoch_saves_a_checkpoint_returns_143_and_resumes_mid_epoch
def test_sigterm_mid_epoch_saves_a_checkpoint_exits_nonzero_and_resumes(tmp_path):
    import os

    import torch

    args = ["data=synthetic", "data.num_samples=60000", "trainer.max_epochs=3", "logger=csv", "run_id=preempt"]
    log_path = tmp_path / "first.log"
    env = {**os.environ, "AEGIS_OUTPUT_ROOT": str(tmp_path / "out"), "PYTHONUNBUFFERED": "1"}
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, str(TRAIN), *args], cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        _wait_for(proc, log_path, "epoch 1/3")
        time.sleep(0.3)  # into the second epoch
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 143

    run_dir = tmp_path / "out" / "train" / "runs" / "preempt"
    record = summary(run_dir)
    assert record["status"] == "preempted"
    steps_per_epoch = 375  # 60000 samples x 0.8 train split / 128 per batch
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert steps_per_epoch < saved["global_step"] < 3 * steps_per_epoch  # mid-run, not epoch 0

    result = run_train(args, tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = summary(run_dir)
    assert resumed["status"] == "completed"
    assert resumed["resumed_from"] == str(run_dir / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == 3 * steps_per_epoch
    assert resumed["timing"]["train_steps"] == 3 * steps_per_epoch - saved["global_step"]


@pytest.mark.slow  # `train.py -m` end to end: tests/k8s/test_k8s_multirun.py, jobs' configs: tests/test_compose_once.py
def test_multirun_gives_each_job_its_own_run_dir_checkpoint_and_tracking_run(tmp_path):
    result = run_train(["-m", "model.lr=1e-3,1e-2", "trainer=smoke", "logger.register_model=false"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    dirs = run_dirs(tmp_path)
    assert len(dirs) == 2 and dirs[0].parent == dirs[1].parent  # one sweep dir, jobs 0 and 1
    records = [summary(d) for d in dirs]
    assert len({r["run_id"] for r in records}) == 2
    assert len({r["tracking"]["run_id"] for r in records}) == 2
    assert all((d / "checkpoints" / "last.ckpt").is_file() for d in dirs)
    assert [r["metrics"]["test/acc"] for r in records][0] != [r["metrics"]["test/acc"] for r in records][1]


@pytest.mark.slow  # in-process: tests/test_launch.py::test_stamps_are_unique_even_within_one_second
def test_runs_started_in_the_same_second_never_share_a_directory(tmp_path):
    import os

    env = {**os.environ, "AEGIS_OUTPUT_ROOT": str(tmp_path)}
    command = [sys.executable, str(TRAIN), "trainer=smoke", "trainer.max_epochs=1", "logger=none"]
    procs = [subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    dirs = run_dirs(tmp_path)
    assert len(dirs) == 2
    assert all((d / "summary.json").is_file() for d in dirs)


@pytest.mark.slow  # a failing job's exit code through `train.py -m`: tests/k8s/test_k8s_multirun.py
def test_a_failing_multirun_job_fails_the_sweep_with_its_exit_code(tmp_path):
    # Job 1 is a valid config whose loss diverges to NaN (what no up-front check can know):
    # it fails in training. (A value validation refuses would stop the sweep before job 0.)
    result = run_train(["-m", "model.lr=1e-3,1e30", "trainer=smoke", "logger=none"], tmp_path)
    assert result.returncode == 1
    assert "exited with code 1" in result.stderr
    assert (run_dirs(tmp_path)[0] / "summary.json").is_file()  # job 0 still ran


@pytest.mark.slow  # in-process: tests/test_training.py::test_progress_is_a_bar_on_a_terminal_and_epoch_lines_otherwise
def test_a_terminal_gets_a_progress_bar_instead_of_epoch_lines(tmp_path):
    import fcntl
    import os
    import pty
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # the child: a 120-column terminal, as a user's
        fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        os.environ["AEGIS_OUTPUT_ROOT"] = str(tmp_path)
        os.chdir(REPO)
        os.execv(sys.executable, [sys.executable, str(TRAIN), "trainer=smoke", "logger=none"])
    output = bytearray()
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output.extend(chunk)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    text = output.decode(errors="replace")
    assert "Epoch 1:" in text and "it/s" in text
    assert "epoch 1/2 " not in text
