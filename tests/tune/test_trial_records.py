"""A search's bookkeeping without starting Ray: trial numbers, ASHA's rungs after a resume,
how each trial ended (summary.json, MLflow), and a continued MLflow run's steps."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("ray")

from aegis.tune.results import TrialRecord  # noqa: E402
from aegis.tune.layout import TRIAL_KEY, trial_number  # noqa: E402
from aegis.tune.trial import sampled  # noqa: E402


class StubTrial:
    """What the schedulers read of a Ray ``Trial``."""

    def __init__(self, trial_id: str, config: dict, path: Path | None = None, local_path: Path | None = None) -> None:
        self.trial_id, self.config = trial_id, config
        self.path = str(path) if path else None  # in the sweep dir
        self.local_path = str(local_path) if local_path else None  # the driver's staging dir
        self.invalidated = 0

    def invalidate_json_state(self) -> None:
        self.invalidated += 1


def test_the_trial_number_travels_in_the_config_never_from_a_hash():
    assert trial_number({TRIAL_KEY: 3, "model.lr": 0.1}) == 3
    assert trial_number({"model.lr": 0.1}) is None
    assert sampled({TRIAL_KEY: 3, "model.lr": 0.1}) == {"model.lr": 0.1}


def test_the_scheduler_numbers_trials_in_the_order_ray_adds_them_and_keeps_restored_numbers():
    from aegis.tune.numbering import NumberedFIFO

    scheduler = NumberedFIFO()
    trials = [StubTrial(tid, {"model.lr": 0.1}) for tid in ("a1b2c3d4", "0f0f0f0f", "77aa77aa")]  # Optuna-style ids
    for trial in trials:
        scheduler.on_trial_add(None, trial)
    assert [trial_number(t.config) for t in trials] == [0, 1, 2] and all(t.invalidated for t in trials)

    # A resumed search: Ray adds the restored trials (numbers in their saved configs) first.
    resumed = NumberedFIFO()
    for number, trial in zip((0, 2), (StubTrial("x", {TRIAL_KEY: 0}), StubTrial("y", {TRIAL_KEY: 2}))):
        resumed.on_trial_add(None, trial)
        assert trial_number(trial.config) == number
    new = StubTrial("z", {"model.lr": 0.3})
    resumed.on_trial_add(None, new)
    assert trial_number(new.config) == 3


def _progress(folder: Path, rows: list[tuple[int, float]]) -> Path:
    folder.mkdir(parents=True)
    lines = ["val/acc,epoch,training_iteration"] + [f"{v},{e},{e}" for e, v in rows]
    (folder / "progress.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_asha_rebuilds_its_rungs_from_the_restored_trials_reports(tmp_path):
    from ray.tune.schedulers import TrialScheduler

    from aegis.tune.numbering import ResumableASHA

    def asha() -> ResumableASHA:
        scheduler = ResumableASHA(time_attr="epoch", max_t=10, grace_period=1, reduction_factor=2)
        scheduler.set_search_properties("val/acc", "max")
        return scheduler

    # A trial that reached epoch 4 before the interrupt, epoch 3 reported twice (re-run after a kill).
    # Its progress.csv is in the sweep dir; the resumed driver's staging dir starts empty.
    restored = StubTrial("aaaa", {TRIAL_KEY: 0},
                         _progress(tmp_path / "a", [(1, 0.8), (2, 0.85), (3, 0.1), (3, 0.86), (4, 0.9)]),
                         local_path=tmp_path / "staging")
    scheduler = asha()
    scheduler.on_trial_add(None, restored)
    rungs = {milestone: dict(recorded) for milestone, recorded in scheduler._brackets[0]._rungs}
    assert rungs[1] == {"aaaa": 0.8} and rungs[2] == {"aaaa": 0.85} and rungs[4] == {"aaaa": 0.9}

    # A new trial worse at the first rung is stopped there, as it would have been without the interrupt.
    new = StubTrial("bbbb", {})
    scheduler.on_trial_add(None, new)
    assert scheduler.on_trial_result(None, new, {"epoch": 1, "val/acc": 0.5}) == TrialScheduler.STOP


def _run_dir(sweep: Path, number: int, summary: dict | None) -> Path:
    run_dir = sweep / str(number)
    run_dir.mkdir(parents=True)
    if summary is not None:
        (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def _reported(run_dir: Path) -> None:
    (run_dir / "tune_checkpoint").mkdir()
    (run_dir / "tune_checkpoint" / "reported-0002.ckpt").write_bytes(b"weights")


class RayTaskErrorLike(Exception):
    """Ray wraps what a trial raised, its message coloured for a terminal, and keeps it as ``cause``."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=1) {cause}")
        self.cause = cause


def test_a_trial_that_crashed_before_training_gets_a_failed_record_with_its_clean_cause(tmp_path):
    from aegis.tune.outcomes import trial_outcome

    run_dir = _run_dir(tmp_path, 1, None)
    record = TrialRecord("a1b2c3d4", 1, {"model.lr": 0.1}, run_dir=run_dir)
    error = RayTaskErrorLike(ValueError("\x1b[31mmodel.hidden_dims must not be empty\x1b[0m"))
    trial_outcome(record, error, done=True, interrupted=False)
    assert record.status == "failed" and record.log == run_dir / "train.log"
    assert record.error == "ValueError: model.hidden_dims must not be empty"
    written = json.loads((run_dir / "summary.json").read_text())
    assert written["status"] == "failed" and "\x1b" not in json.dumps(written)
    assert written["failure"]["exception"] == "ValueError"
    assert written["failure"]["message"] == "model.hidden_dims must not be empty"


def test_a_trial_the_interrupt_stopped_is_interrupted_and_one_asha_stopped_stays_stopped(tmp_path):
    from aegis.tune.outcomes import trial_outcome

    stopped = {"status": "stopped", "epochs_completed": 2, "attempts": [{"attempt": 1, "status": "stopped"}]}
    cut = TrialRecord("a", 0, {}, run_dir=_run_dir(tmp_path, 0, stopped))
    _reported(cut.run_dir)
    trial_outcome(cut, None, done=False, interrupted=True)
    assert cut.status == "interrupted" and cut.epochs == 2
    assert (cut.run_dir / "tune_checkpoint" / "reported-0002.ckpt").is_file()  # what the resume continues from
    written = json.loads((cut.run_dir / "summary.json").read_text())
    assert written["status"] == "interrupted" and written["attempts"][-1]["status"] == "interrupted"

    # A worker ended before it wrote anything: the epochs Ray heard of.
    killed = TrialRecord("c", 2, {}, history=[(1, 0.5), (2, 0.6)], run_dir=_run_dir(tmp_path, 2, {"status": "running"}))
    trial_outcome(killed, None, done=False, interrupted=True)
    written = json.loads((killed.run_dir / "summary.json").read_text())
    assert written["status"] == "interrupted" and written["epochs_completed"] == 2

    early = TrialRecord("b", 1, {}, run_dir=_run_dir(tmp_path, 1, stopped))
    _reported(early.run_dir)
    trial_outcome(early, None, done=True, interrupted=False)
    assert early.status == "stopped"
    assert not list((early.run_dir / "tune_checkpoint").glob("*.ckpt"))  # ended: never restored
    assert json.loads((early.run_dir / "summary.json").read_text())["status"] == "stopped"


def test_the_driver_completes_a_cut_trial_only_after_its_worker_wrote_its_own_last_record(tmp_path):
    """The race the CI saw: Ray Tune returns from an interrupt without waiting for the stopped
    trial's thread, whose "stopped" (written 0.05 s later) replaced the driver's "interrupted"."""
    import socket
    import subprocess
    import sys

    from aegis.tune.search import _records

    run_dir = _run_dir(tmp_path, 1, None)
    worker = subprocess.Popen([sys.executable, "-c", (
        "import json, os, socket, sys, time\n"
        "path = sys.argv[1]\n"
        "record = {'status': 'running', 'host': socket.gethostname(), 'pid': os.getpid(), 'attempts': [{'attempt': 1, 'status': 'running'}]}\n"
        "open(path, 'w').write(json.dumps(record)); print('started', flush=True)\n"
        "time.sleep(0.7)\n"
        "record.update(status='stopped', epochs_completed=2); record['attempts'][-1]['status'] = 'stopped'\n"
        "open(path, 'w').write(json.dumps(record))\n"
    ), str(run_dir / "summary.json")], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline().strip() == "started"
        assert json.loads((run_dir / "summary.json").read_text())["host"] == socket.gethostname()
        result = SimpleNamespace(metrics={"trial_id": "t1"}, config={TRIAL_KEY: 1}, path=str(tmp_path / "ray" / "x"),
                                 metrics_dataframe=None, error=None)
        (record,) = _records([result], "val/acc", tmp_path, unfinished={"t1"})
    finally:
        worker.wait(timeout=30)
    assert record.status == "interrupted"
    written = json.loads((run_dir / "summary.json").read_text())
    assert written["status"] == "interrupted" and written["epochs_completed"] == 2


def test_the_driver_does_not_wait_on_a_worker_record_that_is_already_settled(tmp_path):
    import time

    from aegis.tune.outcomes import await_workers

    gone = _run_dir(tmp_path, 0, {"status": "running", "host": __import__("socket").gethostname(), "pid": 2**22 + 7})
    elsewhere = _run_dir(tmp_path, 1, {"status": "stopped", "host": "another-node", "pid": 1})
    started = time.monotonic()
    assert await_workers([gone, elsewhere], timeout=5) == []
    assert time.monotonic() - started < 1
    still = _run_dir(tmp_path, 2, {"status": "running", "host": "another-node", "pid": 1})
    assert await_workers([still], timeout=0.3) == [still]


def test_mlflow_closes_each_trial_as_it_ended_and_gives_a_crashed_trial_a_failed_run(tmp_path):
    from mlflow.tracking import MlflowClient

    from aegis.failures.record import Failure
    from aegis.tune.tracking import mark_outcomes

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("train", artifact_location=str(tmp_path / "artifacts"))
    parent = client.create_run(experiment, run_name="search-s").info.run_id
    stopped_run = client.create_run(experiment, tags={"mlflow.parentRunId": parent}).info.run_id
    sweep = tmp_path / "sweep"
    stopped_dir = _run_dir(sweep, 0, {"status": "stopped"})
    (stopped_dir / "tracking.json").write_text(json.dumps({"logger": "mlflow", "run_id": stopped_run}))
    crashed_dir = _run_dir(sweep, 1, None)
    lost_run = client.create_run(experiment, tags={"mlflow.parentRunId": parent}).info.run_id
    lost_dir = sweep / "2.lost-cccc"  # a trial Ray Tune lost in a kill -9 of the driver (aegis.tune.trial)
    lost_dir.mkdir()
    (lost_dir / "tracking.json").write_text(json.dumps({"logger": "mlflow", "run_id": lost_run}))
    failure = Failure(cause="ValueError: bad", exception="ValueError", message="bad")
    trials = [TrialRecord("a", 0, {}, run_dir=stopped_dir, status="stopped"),
              TrialRecord("b", 1, {}, run_dir=crashed_dir, status="failed", error=failure.cause,
                          failure=failure.as_dict())]
    mark_outcomes(trials, {"tracking_uri": uri, "run_id": parent, "experiment_id": experiment}, "s", sweep)

    assert client.get_run(stopped_run).info.status == "KILLED"
    (crashed,) = client.search_runs([experiment], "tags.`aegis.trial_number` = '1'")
    assert crashed.info.status == "FAILED" and crashed.data.tags["mlflow.parentRunId"] == parent
    assert crashed.data.tags["aegis.failures.record.exception"] == "ValueError"
    assert crashed.data.tags["aegis.run_dir"] == str(crashed_dir)
    assert client.get_run(lost_run).info.lifecycle_stage == "deleted"  # no trial: not a child of the search


def test_a_continued_mlflow_run_logs_each_metric_at_each_step_once():
    from aegis.training.mlflow_steps import log_each_step_once

    history = {"val/acc": [0, 7], "train/loss": [3, 7]}
    client = SimpleNamespace(
        get_run=lambda run_id: SimpleNamespace(data=SimpleNamespace(metrics=dict.fromkeys(history, 0.0))),
        get_metric_history=lambda run_id, key: [SimpleNamespace(step=s) for s in history[key]],
    )
    logged: list[tuple[dict, int]] = []
    logger = SimpleNamespace(experiment=client, run_id="r",
                             log_metrics=lambda metrics, step=None: logged.append((dict(metrics), step)))
    log_each_step_once(logger)
    logger.log_metrics({"val/acc": 0.9, "train/loss": 0.1}, step=7)  # the re-run epoch: already there
    logger.log_metrics(metrics={"train/loss": 0.2, "val/acc": 0.8}, step=3)  # val/acc new at 3
    logger.log_metrics({"val/acc": 0.95}, step=15)
    assert logged == [({"val/acc": 0.8}, 3), ({"val/acc": 0.95}, 15)]


def test_a_run_dir_left_by_a_trial_ray_lost_moves_aside_for_the_trial_now_numbered_so(tmp_path):
    from aegis.tune.trial import claim_run_dir

    run_dir = tmp_path / "2"
    claim_run_dir(run_dir, "aaaa1111")
    (run_dir / "checkpoints").mkdir()
    claim_run_dir(run_dir, "aaaa1111")  # the same trial, restored: its dir stays
    assert (run_dir / "checkpoints").is_dir()
    claim_run_dir(run_dir, "bbbb2222")  # another trial got number 2 after a kill -9 lost the first
    assert (tmp_path / "2.lost-aaaa1111" / "checkpoints").is_dir()
    assert json.loads((run_dir / "trial.json").read_text()) == {"trial_id": "bbbb2222", "number": 2}
    assert not (run_dir / "checkpoints").exists()


def test_a_restored_trial_continues_from_the_epoch_ray_last_recorded(tmp_path):
    from ray.tune import Checkpoint

    from aegis.core.files import write_json
    from aegis.tune.reporting import resume_point

    run_dir = tmp_path / "0"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"epoch 5")  # written, but its report never arrived
    reported = run_dir / "tune_checkpoint" / "reported-0004.ckpt"
    (run_dir / "tune_checkpoint" / "pointer").mkdir(parents=True)
    reported.write_bytes(b"epoch 4")
    write_json(run_dir / "tune_checkpoint" / "pointer" / "pointer.json", {"checkpoint": str(reported), "epoch": 4})
    assert resume_point(Checkpoint.from_directory(str(run_dir / "tune_checkpoint" / "pointer")), run_dir) == reported

    # No Ray checkpoint: whatever the dir holds never reached the search, and the trial starts over.
    assert resume_point(None, run_dir) is None
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "tune_checkpoint").exists()


def test_the_crash_budget_survives_a_resume_through_ray_tunes_callback_state(tmp_path):
    from aegis.tune.search import FailureBudget

    before = FailureBudget(1, tmp_path)
    before.callback.on_trial_error(0, [], SimpleNamespace(trial_id="a", config={TRIAL_KEY: 4}))
    assert before.failed == ["a"] and not before.exceeded
    restored = FailureBudget(1, tmp_path)  # what Tuner.restore unpickles, then Ray Tune restores its state
    restored.callback.set_state(before.callback.get_state())
    restored.callback.on_trial_error(0, [], SimpleNamespace(trial_id="b", config={TRIAL_KEY: 5}))
    assert restored.failed == ["a", "b"] and restored.exceeded and restored.stopper.stop_all()


def test_a_trial_whose_last_result_ray_recorded_before_its_checkpoint_continues_after_that_result(tmp_path):
    """Ray Tune records a result (progress.csv) before it fetches the report's checkpoint (a
    separate save task): a search stopped in between restores the previous epoch's checkpoint
    with the later epoch already in the trial's history. The trial continues after the epoch Ray
    recorded (its kept link), so that epoch is not run, and reported, a second time."""
    from ray.tune import Checkpoint

    from aegis.core.files import write_json
    from aegis.tune.reporting import last_recorded_epoch, resume_point

    run_dir = tmp_path / "1"
    links = run_dir / "tune_checkpoint"
    (links / "pointer").mkdir(parents=True)
    for epoch in (1, 2):
        (links / f"reported-{epoch:04d}.ckpt").write_bytes(f"epoch {epoch}".encode())
    write_json(links / "pointer" / "pointer.json", {"checkpoint": str(links / "reported-0001.ckpt"), "epoch": 1})
    ray_trial = tmp_path / "ray" / "train_abc12_00001"
    ray_trial.mkdir(parents=True)
    (ray_trial / "progress.csv").write_text("val/acc,epoch,training_iteration\n0.61,1,1\n0.77,2,2\n")
    recorded = last_recorded_epoch(str(ray_trial))
    assert recorded == 2
    checkpoint = Checkpoint.from_directory(str(links / "pointer"))
    assert resume_point(checkpoint, run_dir, recorded) == links / "reported-0002.ckpt"
    # Ray's own checkpoint wins when it is as recent, or when the recorded epoch's link is gone.
    assert resume_point(checkpoint, run_dir, 1) == links / "reported-0001.ckpt"
    (links / "reported-0002.ckpt").unlink()
    assert resume_point(checkpoint, run_dir, 2) == links / "reported-0001.ckpt"
    assert last_recorded_epoch(str(tmp_path / "nowhere")) is None and last_recorded_epoch(None) is None


def test_a_trial_ray_restarts_without_a_checkpoint_continues_its_result_files(tmp_path):
    """The CI's other resume failure: Ray recorded epoch 1 but had not fetched its checkpoint
    when the search was interrupted; the resumed search restarted the trial "from scratch" in
    Ray's eyes (the trial itself went on from epoch 2) and progress.csv began again at epoch 2."""
    import pyarrow.fs

    from aegis.tune.numbering import reported
    from aegis.tune.search import _result_loggers

    remote = tmp_path / "sweep" / "ray" / "run_trial_t1"
    _progress(remote, [(1, 0.5)])
    (remote / "result.json").write_text(json.dumps({"epoch": 1, "val/acc": 0.5}) + "\n")
    local = tmp_path / "staging" / "run_trial_t1"
    local.mkdir(parents=True)  # a resumed session's staging dir, as Ray makes it: empty

    class Trial:
        checkpoint = None
        config = {TRIAL_KEY: 1}
        local_path = str(local)
        storage = SimpleNamespace(trial_fs_path=str(remote), storage_filesystem=pyarrow.fs.LocalFileSystem())

        def init_local_path(self) -> None:
            local.mkdir(parents=True, exist_ok=True)

    trial = Trial()
    for logger in _result_loggers():
        for epoch, value in [(2, 0.6), (3, 0.7)]:
            logger.log_trial_result(epoch - 1, trial, {"val/acc": value, "epoch": epoch, "training_iteration": epoch - 1})
        logger.log_trial_end(trial)
    assert reported(str(local), "val/acc") == [(1, 0.5), (2, 0.6), (3, 0.7)]
    assert [json.loads(line)["epoch"] for line in (local / "result.json").read_text().splitlines()] == [1, 2, 3]

    fresh = tmp_path / "staging" / "run_trial_t2"  # a trial that never reported: new files, nothing copied
    trial.local_path, trial.storage = str(fresh), SimpleNamespace(trial_fs_path=str(tmp_path / "none"),
                                                                  storage_filesystem=pyarrow.fs.LocalFileSystem())
    local = fresh
    fresh.mkdir()
    for logger in _result_loggers():
        logger.log_trial_result(0, trial, {"val/acc": 0.4, "epoch": 1, "training_iteration": 1})
        logger.log_trial_end(trial)
    assert reported(str(fresh), "val/acc") == [(1, 0.4)]


def test_a_trials_lineage_names_the_single_run_that_reruns_it_not_rays_worker(monkeypatch):
    """Issue 24 item 11: a trial's aegis.reproduce (and aegis show of it) was
    ``python default_worker.py search=ray-tune ...``, Ray's worker script, which starts a search."""
    import os

    from omegaconf import OmegaConf

    from aegis.training.lineage import LAUNCH_ENV, origin_of, reproduce_command
    from aegis.tune.space import parse
    from aegis.tune.trial import TrialJob, _launched_as

    monkeypatch.delenv(LAUNCH_ENV, raising=False)
    space = parse(["search=ray-tune", "trainer=smoke", "model.lr=choice(0.1,0.01)",
                   "model.hidden_dims=choice([64],[32,16])"])
    job = TrialJob(hydra_context=None, master_config=None, space=space, entrypoint="train.py",
                   unselect=["~search"])
    cfg = OmegaConf.create({"launcher": {"name": "local"}, "hydra": {"job": {"config_name": "train"}}})
    params = {"model.lr": 0.01, "model.hidden_dims": space.to_ray()["model.hidden_dims"].categories[1],
              TRIAL_KEY: 2}
    worker = SimpleNamespace(task_overrides=("search=ray-tune", "run_id=s"), entrypoint="/ray/default_worker.py",
                             config_name="train")
    with _launched_as(job, params, cfg):
        origin = origin_of("local", worker, os.environ)
        assert reproduce_command(origin) == "python train.py trainer=smoke '~search' model.lr=0.01 " \
                                            "'model.hidden_dims=[32,16]'"
    assert LAUNCH_ENV not in os.environ  # the next trial in this worker starts clean
