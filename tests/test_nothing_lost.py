"""Nothing lost: last.ckpt is the last state, resume survives corruption, and every
attempt leaves a record, whatever ends it (a failure, a NaN, a full disk, kill -9).

The default tier trains in this process (a SIGTERM is sent to this process by a callback);
the ``python train.py`` subprocess versions of the same stories, and the kill -9 loop, are
in the slow tier.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from aegis.launch.base import RunContext
from helpers import REPO, run_train, summary

pytest.importorskip("lightning")
# New MLflow stores are copies of a fresh one (tests/conftest.py): their creation is not the subject here.
pytestmark = pytest.mark.usefixtures("store_from_template")


@pytest.fixture()
def train_run(compose, tmp_path, monkeypatch):
    """Train in this process; returns (outcome, run_dir). ``callbacks`` are extra Lightning callbacks."""
    from aegis.training.run import train

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def _train(*overrides: str, run_dir: Path | None = None, callbacks=(), root: Path | None = None):
        cfg = compose(f"paths.root={root or tmp_path}", "progress=none", *overrides)
        run_dir = run_dir or tmp_path / "run"
        ctx = RunContext(run_dir=run_dir, run_id=run_dir.name, task_overrides=overrides, config_name="train")
        return train(cfg, ctx, callbacks=callbacks), run_dir

    return _train


def _load(path: Path) -> dict:
    import torch

    return torch.load(path, weights_only=False, map_location="cpu")


SMOKE = ("trainer=smoke", "logger=none")


def test_last_checkpoint_is_the_final_state_even_when_the_monitored_metric_stops_improving(train_run):
    # mode=min on an accuracy: the "best" is epoch 0 and never improves after it. Lightning's
    # save_last followed the top-k saves, so last.ckpt stayed at epoch 0.
    outcome, run_dir = train_run(*SMOKE, "trainer.max_epochs=4", "checkpoint.mode=min")
    assert outcome.exit_code == 0
    last = _load(run_dir / "checkpoints" / "last.ckpt")
    assert last["global_step"] == outcome.summary["global_step"] == 4 * 8
    assert last["epoch"] == 3
    assert Path(outcome.summary["checkpoints"]["best"]).name == "best-epoch000.ckpt"


def test_last_checkpoint_is_also_written_every_n_steps(train_run):
    import lightning.pytorch as L

    seen = []

    class Watch(L.Callback):  # runs before the checkpoint callbacks of the same batch
        def on_train_batch_end(self, trainer, *args):
            path = trainer.default_root_dir + "/checkpoints/last.ckpt"
            seen.append(_load(Path(path))["global_step"] if os.path.exists(path) else None)

    outcome, _ = train_run(*SMOKE, "trainer.max_epochs=1", "checkpoint.every_n_steps=3", callbacks=[Watch()])
    assert outcome.exit_code == 0
    # at batch ends 1..8 the file on disk holds the latest multiple of 3 before it
    assert seen == [None, None, None, 3, 3, 3, 6, 6]


def test_a_truncated_last_checkpoint_falls_back_to_the_previous_one_and_is_kept_aside(train_run, caplog):
    first, run_dir = train_run(*SMOKE, "trainer.max_epochs=2")
    checkpoints = run_dir / "checkpoints"
    previous = _load(checkpoints / "last.prev.ckpt")
    assert previous["global_step"] < first.summary["global_step"]  # a second, older state is kept
    last = checkpoints / "last.ckpt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])

    with caplog.at_level(logging.WARNING):
        second, _ = train_run(*SMOKE, "trainer.max_epochs=3", run_dir=run_dir)
    assert second.exit_code == 0
    warnings = [r.getMessage() for r in caplog.records if "Unreadable checkpoint" in r.getMessage()]
    assert len(warnings) == 1 and "last.ckpt" in warnings[0] and "\n" not in warnings[0]
    assert not [r for r in caplog.records if r.exc_info]  # one line, no traceback
    record = summary(run_dir)
    assert record["status"] == "completed" and record["global_step"] == 3 * 8
    assert record["resumed_from"] == str(checkpoints / "last.prev.ckpt")
    assert "last.ckpt" in record["resume_fallback"][0]
    [kept] = (checkpoints / "corrupt").iterdir()
    assert kept.name.startswith("last.ckpt.") and kept.stat().st_size == len(data) // 2


def test_an_empty_last_checkpoint_and_previous_fall_back_to_the_best(train_run):
    # mode=min on an accuracy: the best stays epoch 0, and after three epochs last.ckpt and
    # last.prev.ckpt hold epochs 2 and 1, states of their own (a best written at last.ckpt's
    # step is the same file: the next test)
    _, run_dir = train_run(*SMOKE, "trainer.max_epochs=3", "checkpoint.mode=min")
    checkpoints = run_dir / "checkpoints"
    (checkpoints / "last.ckpt").write_bytes(b"")
    (checkpoints / "last.prev.ckpt").write_bytes(b"\0" * 100)
    outcome, _ = train_run(*SMOKE, "trainer.max_epochs=4", "checkpoint.mode=min", run_dir=run_dir)
    assert outcome.exit_code == 0
    assert Path(outcome.summary["resumed_from"]).name.startswith("best-epoch")
    assert len(list((checkpoints / "corrupt").iterdir())) == 2


def test_last_checkpoint_at_a_best_checkpoints_step_is_that_file_and_resumes(train_run):
    """An epoch end that just wrote its best checkpoint links last.ckpt to it rather than
    serializing the same state twice; resume, the previous state and corruption checks are
    as for a written file."""
    first, run_dir = train_run(*SMOKE, "trainer.max_epochs=2", "checkpoint.save_top_k=-1")
    checkpoints = run_dir / "checkpoints"
    last, previous = checkpoints / "last.ckpt", checkpoints / "last.prev.ckpt"
    assert last.samefile(checkpoints / "best-epoch001.ckpt")  # one file, two names
    assert previous.samefile(checkpoints / "best-epoch000.ckpt")  # the state it replaced, kept
    assert _load(last)["global_step"] == first.summary["global_step"] == 2 * 8
    assert not list(checkpoints.glob(".*.tmp-*"))

    resumed, _ = train_run(*SMOKE, "trainer.max_epochs=3", "checkpoint.save_top_k=-1", run_dir=run_dir)
    record = summary(run_dir)
    assert resumed.exit_code == 0 and record["status"] == "completed" and record["global_step"] == 3 * 8
    assert record["resumed_from"] == str(last)
    assert last.samefile(checkpoints / "best-epoch002.ckpt")

    # Damage under one name is damage under both: detected, and the previous state resumes.
    data = last.read_bytes()
    (checkpoints / "best-epoch002.ckpt").write_bytes(data[: len(data) // 2])
    again, _ = train_run(*SMOKE, "trainer.max_epochs=4", "checkpoint.save_top_k=-1", run_dir=run_dir)
    record = summary(run_dir)
    assert again.exit_code == 0 and record["global_step"] == 4 * 8
    assert record["resumed_from"] == str(previous)
    assert "last.ckpt" in record["resume_fallback"][0]


def test_last_checkpoint_is_written_whole_when_the_best_checkpoint_holds_another_state(train_run):
    """The best of an earlier epoch is never linked: last.ckpt is the final state."""
    outcome, run_dir = train_run(*SMOKE, "trainer.max_epochs=2", "checkpoint.mode=min")
    checkpoints = run_dir / "checkpoints"
    assert not (checkpoints / "last.ckpt").samefile(checkpoints / "best-epoch000.ckpt")
    assert _load(checkpoints / "last.ckpt")["global_step"] == outcome.summary["global_step"] == 2 * 8


def test_every_checkpoint_unreadable_starts_over_in_a_new_mlflow_run_that_keeps_its_metrics(train_run):
    """Issue 24 items 7-8: starting over logged into the old MLflow run, which dropped every metric
    at a step it already had (it showed the abandoned attempt's values); MLflow's attempt count
    now equals summary.json's."""
    from mlflow.tracking import MlflowClient

    first, run_dir = train_run("trainer=smoke", "trainer.max_epochs=1")
    checkpoints = run_dir / "checkpoints"
    for path in checkpoints.glob("*.ckpt"):
        path.write_bytes(b"\0" * 100)
    again, _ = train_run("trainer=smoke", "trainer.max_epochs=1", "logger.register_model=false", run_dir=run_dir)
    assert again.exit_code == 0 and again.summary["resumed_from"] is None
    old_id, new_id = first.summary["tracking"]["run_id"], again.summary["tracking"]["run_id"]
    assert new_id != old_id
    client = MlflowClient(tracking_uri=again.summary["tracking"]["tracking_uri"])
    history = client.get_metric_history(new_id, "val/acc")
    assert [m.step for m in history] == [m.step for m in client.get_metric_history(old_id, "val/acc")]
    assert history[-1].value == pytest.approx(again.summary["metrics"]["val/acc"], abs=1e-6)
    assert client.get_run(old_id).data.tags["aegis.superseded_by"] == new_id
    assert client.get_run(new_id).data.tags["aegis.lineage.attempts"] == str(len(summary(run_dir)["attempts"])) == "2"


@pytest.mark.slow  # in-process: test_a_truncated_last_checkpoint_falls_back_to_the_previous_one_and_is_kept_aside
def test_truncated_last_checkpoint_from_the_command_line_is_one_warning_line(tmp_path):
    args = ["trainer=smoke", "logger=none", "run_id=exp1"]
    assert run_train([*args, "trainer.max_epochs=1"], tmp_path).returncode == 0
    last = tmp_path / "train" / "runs" / "exp1" / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    result = run_train([*args, "trainer.max_epochs=2"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    warnings = [line for line in output.splitlines() if "Unreadable checkpoint" in line]
    assert len(warnings) == 1 and "last.ckpt" in warnings[0]
    assert summary(last.parent.parent)["status"] == "completed"


def test_a_later_failure_keeps_the_completed_record_and_adds_an_attempt(train_run):
    import lightning.pytorch as L

    done, run_dir = train_run(*SMOKE, "trainer.max_epochs=1")

    class Boom(L.Callback):
        def on_train_start(self, trainer, pl_module):
            raise RuntimeError("injected failure")

    with pytest.raises(RuntimeError, match="injected failure"):
        train_run(*SMOKE, "trainer.max_epochs=2", run_dir=run_dir, callbacks=[Boom()])
    record = summary(run_dir)
    assert record["status"] == "completed" and record["global_step"] == done.summary["global_step"]
    assert [a["status"] for a in record["attempts"]] == ["completed", "failed"]
    assert "injected failure" in record["attempts"][1]["error"]


def test_an_attempt_killed_without_a_record_is_found_and_marked_killed(train_run, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "summary.json").write_text(json.dumps(
        {"status": "running", "attempts": [{"attempt": 1, "status": "running", "pid": 999999}]}))
    stale = run_dir / "checkpoints" / ".last.ckpt.tmp-999999"  # a save a kill -9 interrupted
    stale.write_bytes(b"partial")
    outcome, _ = train_run(*SMOKE, "trainer.max_epochs=1", run_dir=run_dir)
    assert outcome.exit_code == 0
    record = summary(run_dir)
    assert [a["status"] for a in record["attempts"]] == ["killed", "completed"]
    assert not stale.exists()


def test_a_non_finite_loss_fails_the_run_and_registers_nothing(train_run, tmp_path):
    from mlflow.tracking import MlflowClient

    outcome, run_dir = train_run("trainer=smoke", "trainer.max_epochs=3", "model.optimizer=sgd", "model.lr=1e12",
                                 "logger.registered_model_name=should-not-exist")
    assert outcome.exit_code == 1
    record = summary(run_dir)
    assert record["status"] == "failed"
    assert "NaN or infinite" in record["cause"] and "model.lr" in record["cause"]
    assert record["global_step"] < 3 * 8  # stopped early, not trained to the end
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert not client.search_registered_models("name='should-not-exist'")
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.exists():  # whatever was saved before the loss broke is finite
        import torch

        assert all(torch.isfinite(t).all() for t in _load(last)["state_dict"].values())


def _tmpfs(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    return path


def test_a_full_disk_keeps_the_previous_checkpoint_and_records_why(train_run, tmp_path):
    disk = _tmpfs(tmp_path / "disk", "4m")
    try:
        run_dir = disk / "run"
        first, _ = train_run(*SMOKE, "trainer.max_epochs=1", run_dir=run_dir, root=disk)
        assert first.exit_code == 0
        before = _load(run_dir / "checkpoints" / "last.ckpt")["global_step"]
        free = shutil.disk_usage(disk).free
        (disk / "filler").write_bytes(b"\0" * (free - 150_000))  # room for records, not a checkpoint

        second, _ = train_run(*SMOKE, "trainer.max_epochs=3", run_dir=run_dir, root=disk)
        assert second.exit_code == 1
        record = summary(run_dir)
        failed = record["attempts"][-1]
        assert failed["status"] == "failed"
        assert "no space left on device" in failed["cause"] and str(run_dir / "checkpoints") in failed["cause"]
        assert _load(run_dir / "checkpoints" / "last.ckpt")["global_step"] >= before  # intact
        assert not [p for p in run_dir.rglob("*") if ".tmp-" in p.name]
        for key in ("last", "best"):
            assert record["checkpoints"][key] is None or Path(record["checkpoints"][key]).is_file()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


_WRITER = textwrap.dedent("""
    import sys, torch
    from pathlib import Path
    from aegis.training.checkpoints import AtomicCheckpointIO
    io, target = AtomicCheckpointIO(), Path(sys.argv[1])
    step = 0
    while True:
        step += 1
        io.save_checkpoint({"global_step": step, "w": torch.full((2_000_000,), float(step))}, target)
        print(step, flush=True)
""")


@pytest.mark.slow  # in-process: tests/test_training.py::test_checkpoint_writes_are_atomic
def test_kill_9_during_saves_always_leaves_a_loadable_checkpoint(tmp_path):
    from aegis.training.checkpoints import candidates, check_intact

    target = tmp_path / "checkpoints" / "last.ckpt"
    for kill in range(4):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)], cwd=REPO, stdout=subprocess.PIPE,
                                text=True)
        for _ in range(2 + kill):  # a few saves, then kill at a moment inside the next one
            assert proc.stdout.readline()
        time.sleep(0.01 * kill)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        check_intact(target)
        state = _load(target)
        assert float(state["w"][0]) == state["global_step"]  # whole, and one consistent state
        assert candidates(target.parent)[:2] == [target, target.with_name("last.prev.ckpt")]


def _sigterm_this_process() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_mid_epoch_saves_a_checkpoint_returns_143_and_resumes_mid_epoch(train_run):
    """As a preempted pod: SIGTERM lands in fit; the same run dir resumes from that batch.
    (``python train.py`` end to end, exit status included: tests/test_cli.py, slow tier.)"""
    import lightning.pytorch as L

    class SigtermAtStep11(L.Callback):  # 8 steps per epoch: in the middle of the second
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 11:
                _sigterm_this_process()

    handler = signal.getsignal(signal.SIGTERM)
    outcome, run_dir = train_run(*SMOKE, "trainer.max_epochs=3", callbacks=[SigtermAtStep11()])
    assert signal.getsignal(signal.SIGTERM) == handler  # the process's own handler is given back
    assert outcome.exit_code == 143
    assert summary(run_dir)["status"] == "preempted"
    saved = _load(run_dir / "checkpoints" / "last.ckpt")["global_step"]
    assert 8 < saved < 3 * 8 and saved % 8 != 0  # mid-run and mid-epoch, not an epoch-end save

    resumed, _ = train_run(*SMOKE, "trainer.max_epochs=3", run_dir=run_dir)
    assert resumed.exit_code == 0
    record = summary(run_dir)
    assert record["status"] == "completed"
    assert record["resumed_from"] == str(run_dir / "checkpoints" / "last.ckpt")
    assert record["global_step"] == 3 * 8
    assert record["timing"]["train_steps"] == 3 * 8 - saved
    assert [a["status"] for a in record["attempts"]] == ["preempted", "completed"]


@pytest.mark.parametrize("moment", ["start-up", "after training"])
def test_sigterm_outside_fit_is_recorded_as_preempted_in_process(train_run, monkeypatch, moment):
    import lightning.pytorch as L

    from aegis.training import components

    callbacks = []
    if moment == "start-up":  # the attempt's record exists; the model is being built
        build = components.build

        def build_then_sigterm(node, what, **kwargs):
            if what == "model":
                _sigterm_this_process()
            return build(node, what, **kwargs)

        monkeypatch.setattr(components, "build", build_then_sigterm)
    else:
        class SigtermAtTest(L.Callback):  # fit is over: test and the model registration follow
            def on_test_start(self, trainer, pl_module):
                _sigterm_this_process()

        callbacks.append(SigtermAtTest())
    handler = signal.getsignal(signal.SIGTERM)
    outcome, run_dir = train_run(*SMOKE, "trainer.max_epochs=1", callbacks=callbacks)
    assert signal.getsignal(signal.SIGTERM) == handler
    assert outcome.exit_code == 143
    latest = summary(run_dir)["attempts"][-1]
    phase = "start-up" if moment == "start-up" else "test"
    assert latest["status"] == "preempted" and latest["cause"] == f"SIGTERM during {phase}"
    if moment == "after training":  # last.ckpt already holds the final state: the next attempt tests
        assert summary(run_dir)["sigterm"] == "abandoned test"
        assert _load(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 8
        resumed, _ = train_run(*SMOKE, "trainer.max_epochs=1", run_dir=run_dir)
        assert resumed.exit_code == 0
        record = summary(run_dir)
        assert record["status"] == "completed" and record["timing"]["train_steps"] == 0
        assert any(name.startswith("test/") for name in record["metrics"])


def test_sigterm_during_model_registration_lets_it_finish(train_run, monkeypatch):
    """Registration is not cut in half: the SIGTERM is held while it finishes (within the
    grace period) and the run completes, saying so."""
    from aegis.training import tracking

    calls = []
    register = tracking.Tracking.register_model

    def register_then_sigterm(self, *args, **kwargs):
        _sigterm_this_process()
        time.sleep(0.2)  # the registry's remaining round trips
        calls.append(register(self, *args, **kwargs))
        return calls[-1]

    monkeypatch.setattr(tracking.Tracking, "register_model", register_then_sigterm)
    outcome, run_dir = train_run(*SMOKE, "trainer.max_epochs=1", "logger=mlflow", "logger.register_model=true")
    assert len(calls) == 1
    assert outcome.exit_code == 0
    record = summary(run_dir)
    assert record["status"] == "completed"
    assert record["sigterm"] == "finished model registration within the grace period"


@pytest.mark.slow  # in-process: test_sigterm_outside_fit_is_recorded_as_preempted_in_process
@pytest.mark.parametrize("moment", ["start-up", "after training"])
def test_sigterm_outside_fit_is_recorded_as_preempted_with_exit_143(tmp_path, moment):
    env = {**os.environ, "AEGIS_OUTPUT_ROOT": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    args = ["trainer=smoke", "trainer.max_epochs=1", "run_id=t", "progress=lines"]
    log_path = tmp_path / "out.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), *args], cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        record = tmp_path / "train" / "runs" / "t" / "summary.json"
        needle = "Loaded model weights" if moment == "after training" else None  # trainer.test began
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if needle is None and record.exists():
                break  # the attempt has started: imports and building are under way
            if needle is not None and needle in log_path.read_text():
                break  # fit is over: test and the model registration follow
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 143, log_path.read_text()[-3000:]
    latest = summary(tmp_path / "train" / "runs" / "t")["attempts"][-1]
    assert latest["status"] == "preempted" and "SIGTERM during" in latest["cause"]


def test_an_unreadable_tracking_record_fails_in_one_line_and_keeps_the_completed_record_in_process(train_run, caplog):
    args = ("trainer=smoke", "logger.register_model=false")
    done, run_dir = train_run(*args, "trainer.max_epochs=1")
    assert done.exit_code == 0
    (run_dir / "tracking.json").write_text("{not json")
    with caplog.at_level(logging.ERROR):
        outcome, _ = train_run(*args, "trainer.max_epochs=2", run_dir=run_dir)
    assert outcome.exit_code == 1
    [line] = [r.getMessage() for r in caplog.records if "Run failed" in r.getMessage()]
    assert "tracking.json" in line and "logger.new_run=true" in line and "\n" not in line
    record = summary(run_dir)
    assert record["status"] == "completed"
    assert record["attempts"][-1]["status"] == "failed" and "tracking.json" in record["attempts"][-1]["cause"]


@pytest.mark.slow  # in-process: the test above
def test_an_unreadable_tracking_record_fails_in_one_line_and_keeps_the_completed_record(tmp_path):
    args = ["trainer=smoke", "trainer.max_epochs=1", "run_id=t", "logger.register_model=false"]
    assert run_train(args, tmp_path).returncode == 0
    run_dir = tmp_path / "train" / "runs" / "t"
    (run_dir / "tracking.json").write_text("{not json")
    result = run_train([*args[:1], "trainer.max_epochs=2", *args[2:]], tmp_path)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    [line] = [line for line in output.splitlines() if "Run failed" in line]
    assert "tracking.json" in line and "logger.new_run=true" in line
    record = summary(run_dir)
    assert record["status"] == "completed"
    assert record["attempts"][-1]["status"] == "failed" and "tracking.json" in record["attempts"][-1]["cause"]


def test_a_summary_that_is_not_json_is_moved_aside_and_its_attempts_recovered(train_run, tmp_path, caplog):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    attempts = [{"attempt": n, "status": "killed", "pid": 999999} for n in range(1, 7)]
    whole = json.dumps({"status": "killed", "attempt": 6, "attempts": attempts}, indent=2, sort_keys=True)
    damaged = whole[: whole.rindex('"attempt": 6,') + 5]  # cut inside attempt 6: attempts 1-5 are whole
    (run_dir / "summary.json").write_text(damaged)
    with caplog.at_level(logging.WARNING, logger="aegis.training"):
        outcome, _ = train_run(*SMOKE, "trainer.max_epochs=1", run_dir=run_dir)
    assert outcome.exit_code == 0
    [kept] = (run_dir / "corrupt").iterdir()
    assert kept.name.startswith("summary.json.") and kept.read_text() == damaged
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "summary.json" in r.getMessage()]
    assert len(warnings) == 1 and "not valid JSON" in warnings[0] and str(kept) in warnings[0], warnings
    assert "5 earlier attempt(s) recovered" in warnings[0] and "\n" not in warnings[0]
    record = summary(run_dir)
    assert [a["attempt"] for a in record["attempts"]] == [1, 2, 3, 4, 5, 6]
    assert [a["status"] for a in record["attempts"]] == ["killed"] * 5 + ["completed"]
