"""The embedded MLflow store under concurrency and damage, and one tracking run per run dir.

Fast tests prepare stores (from threads of this process) and open tracking runs directly;
the slow tier prepares one from several processes, starts 12 trainings together on a fresh
outputs root, and runs against a real MLflow server whose URI carries a password.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import REPO, TRAIN, delaying_proxy, mlflow_server, serve, summary

pytest.importorskip("mlflow")

from aegis.training.mlflow_store import (StoreError, inspect_store, is_transient, prepare_store, retry_transient,
                                         sqlite_path, store_lock)


def _uri(path: Path) -> str:
    return f"sqlite:///{path}"


def _opens_with_mlflow(uri: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    assert [e.name for e in client.search_experiments()] == ["Default"]
    assert client.search_registered_models() == []


# -- the store --------------------------------------------------------------------------------

def test_sqlite_path_reads_absolute_relative_and_driver_uris():
    assert sqlite_path("sqlite:////abs/dir/mlflow.db") == Path("/abs/dir/mlflow.db")
    assert sqlite_path("sqlite:///rel/mlflow.db") == Path("rel/mlflow.db")
    assert sqlite_path("sqlite+pysqlite:////abs/m.db?timeout=30") == Path("/abs/m.db")
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("http://alice:pw@mlflow:5000") is None


@pytest.mark.slow  # in-process: test_threads_preparing_a_fresh_store_together_all_succeed
def test_processes_preparing_a_fresh_store_together_all_succeed(tmp_path):
    """Without the lock, processes opening a fresh store together fail in alembic's migrations
    ("table _alembic_tmp_* already exists") and leave it half-migrated."""
    uri = _uri(tmp_path / "fresh" / "mlflow.db")
    code = ("import sys; from aegis.training.mlflow_store import prepare_store; prepare_store(sys.argv[1]); "
            "from mlflow.tracking import MlflowClient; MlflowClient(tracking_uri=sys.argv[1]).search_experiments()")
    procs = [subprocess.Popen([sys.executable, "-c", code, uri], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(4)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, "\n".join(outputs)
    state = inspect_store(tmp_path / "fresh" / "mlflow.db")
    assert state.journal_mode == "wal" and not state.leftover_tmp_tables
    _opens_with_mlflow(uri)


def test_threads_preparing_a_fresh_store_together_all_succeed(tmp_path):
    uri = _uri(tmp_path / "mlflow.db")
    errors: list[BaseException] = []

    def prepare() -> None:
        try:
            prepare_store(uri)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=prepare) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    _opens_with_mlflow(uri)


def test_a_ready_store_is_checked_without_waiting_for_the_lock(tmp_path):
    db = tmp_path / "mlflow.db"
    prepare_store(_uri(db))
    with store_lock(db):  # held elsewhere (here: by this test) for as long as it likes
        started = time.perf_counter()
        prepare_store(_uri(db))
        assert time.perf_counter() - started < 1.0


def test_a_store_mlflow_created_without_wal_is_switched_to_wal(tmp_path):
    from mlflow.tracking import MlflowClient

    db = tmp_path / "mlflow.db"
    MlflowClient(tracking_uri=_uri(db)).search_experiments()  # MLflow's own creation: rollback journal
    assert inspect_store(db).journal_mode != "wal"
    prepare_store(_uri(db))
    assert inspect_store(db).journal_mode == "wal"


def test_a_half_migrated_store_is_refused_naming_the_file(tmp_path):
    db = tmp_path / "mlflow.db"
    prepare_store(_uri(db))
    with sqlite3.connect(db) as con:  # what an interrupted alembic batch migration leaves behind
        con.execute("CREATE TABLE _alembic_tmp_runs (run_uuid VARCHAR(32))")
        con.execute("UPDATE alembic_version SET version_num = '4465047574b1'")
    with pytest.raises(StoreError, match=rf"{db} was left half-migrated.*_alembic_tmp_runs.*move it aside"):
        prepare_store(_uri(db))


def test_a_store_from_an_unknown_schema_is_refused_naming_the_file(tmp_path):
    db = tmp_path / "mlflow.db"
    prepare_store(_uri(db))
    with sqlite3.connect(db) as con:
        con.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    with pytest.raises(StoreError, match=rf"{db} has schema revision ffffffffffff, which this MLflow does not know"):
        prepare_store(_uri(db))


def test_a_file_that_is_not_sqlite_is_refused_naming_it(tmp_path):
    db = tmp_path / "mlflow.db"
    db.write_text("not a database, but long enough to be read as a header " * 4)
    with pytest.raises(StoreError, match=rf"{db} cannot be read as SQLite"):
        prepare_store(_uri(db))


def test_busy_errors_are_retried_and_others_are_not():
    from mlflow.exceptions import MlflowException

    calls: list[int] = []

    def busy_twice() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise MlflowException("(sqlite3.OperationalError) database is locked")
        return "done"

    assert retry_transient(busy_twice, "test") == "done" and len(calls) == 3
    assert not is_transient(MlflowException("RESOURCE_DOES_NOT_EXIST: no such run"))
    with pytest.raises(ValueError):
        retry_transient(lambda: (_ for _ in ()).throw(ValueError("bad")), "test")


# -- one tracking run per run dir -----------------------------------------------------------------

@pytest.fixture()
def tracking_for(compose, tmp_path, monkeypatch, store_from_template):
    """``build_tracking`` for run dir ``tmp_path/root/<run_id>`` as rank 0 builds it (a new store
    is a copy of a fresh one: these tests are about the tracking run, not the store)."""
    from aegis.training.tracking import build_tracking

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def _build(*overrides: str, root: Path = tmp_path / "root", run_id: str = "run1", starting_over: bool = False):
        cfg = compose(f"paths.root={root}", *overrides)
        run_dir = root / "runs" / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        return build_tracking(cfg, run_dir, run_id, root.resolve(), continuing=True, rank_zero=True,
                              starting_over=starting_over)

    return _build


@pytest.mark.parametrize("content", ["{not json", "", "[]", '{"logger": "mlflow"}'])
def test_an_unreadable_tracking_json_is_an_error_naming_the_file(tracking_for, tmp_path, content):
    from aegis.training.tracking import TrackingError

    record = tmp_path / "root" / "runs" / "run1" / "tracking.json"
    record.parent.mkdir(parents=True)
    record.write_text(content)
    with pytest.raises(TrackingError, match=rf"{record} cannot be read .*logger.new_run=true"):
        tracking_for()
    tracking = tracking_for("logger.new_run=true")  # starting over on purpose
    tracking.start()
    assert tracking.run_id and json.loads(record.read_text())["run_id"] == tracking.run_id


def test_a_damaged_store_stops_the_run_before_anything_is_logged(tracking_for, tmp_path):
    from aegis.training.tracking import TrackingError

    db = tmp_path / "root" / "mlflow.db"
    prepare_store(_uri(db))
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE _alembic_tmp_tags (key VARCHAR(250))")
    tracking = tracking_for()
    with pytest.raises(TrackingError, match=rf"{db} was left half-migrated"):
        tracking.start()
    assert not (tmp_path / "root" / "runs" / "run1" / "tracking.json").exists()


def test_a_moved_outputs_root_continues_its_tracking_run(tracking_for, tmp_path):
    first = tracking_for(root=tmp_path / "a")
    first.start()
    first.logger.log_metrics({"x": 1.0}, step=0)
    shutil.move(tmp_path / "a", tmp_path / "b")  # the whole outputs root, store included

    moved = tracking_for(root=tmp_path / "b")
    moved.start()
    assert moved.run_id == first.run_id and moved.continued_run
    assert "MLFLOW_TRACKING_URI" not in os.environ  # MLflow exports it; the next run in this process must not see it
    record = json.loads((tmp_path / "b" / "runs" / "run1" / "tracking.json").read_text())
    assert record["tracking_uri"] == f"sqlite:///{tmp_path / 'b' / 'mlflow.db'}"
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=record["tracking_uri"]).get_run(first.run_id)
    assert run.data.tags["aegis.run_dir"] == str(tmp_path / "b" / "runs" / "run1")


def test_a_run_missing_by_id_is_found_by_its_run_id_tag(tracking_for, tmp_path):
    first = tracking_for()
    first.start()
    record = tmp_path / "root" / "runs" / "run1" / "tracking.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "run_id": "0" * 32}))
    again = tracking_for()
    again.start()
    assert again.run_id == first.run_id and again.continued_run


def test_a_run_not_in_the_current_store_starts_a_new_one_with_one_warning(tracking_for, tmp_path, caplog):
    first = tracking_for(root=tmp_path / "a")
    first.start()
    elsewhere = tmp_path / "b" / "runs" / "run1"
    elsewhere.mkdir(parents=True)
    shutil.copy(tmp_path / "a" / "runs" / "run1" / "tracking.json", elsewhere)  # the dir moved, the store did not
    with caplog.at_level(logging.WARNING, logger="aegis.training"):
        fresh = tracking_for(root=tmp_path / "b")
        fresh.start()
    assert fresh.run_id != first.run_id and not fresh.continued_run
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name == "aegis.training"]
    assert len(warnings) == 1 and first.run_id in warnings[0] and "Starting a new MLflow run" in warnings[0]


def test_credentials_in_the_tracking_uri_are_masked_in_the_description(tracking_for, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://alice:S3cret@mlflow.example.com")
    tracking = tracking_for()
    assert tracking.uri == "https://alice:S3cret@mlflow.example.com"  # what connects
    assert tracking.describe()["tracking_uri"] == "https://alice:***@mlflow.example.com"


# -- pods ----------------------------------------------------------------------------------------------

IMAGE = "registry.example.com/aegis:0.1.0"


def _dry_run(tmp_path: Path, *overrides: str, host_uri: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AEGIS_OUTPUT_ROOT": str(tmp_path / "out"), "MLFLOW_TRACKING_URI": host_uri,
           "KUBECONFIG": str(tmp_path / "none")}
    return subprocess.run([sys.executable, str(TRAIN), "launcher=k8s-job", f"launcher.image={IMAGE}",
                           "launcher.dry_run=true", *overrides], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)


def test_pods_without_a_tracking_server_are_announced_and_never_get_the_hosts_uri(tmp_path):
    host_uri = "http://bob:HostPW@mlflow.internal:5000"
    result = _dry_run(tmp_path, "run_id=p1", host_uri=host_uri)
    assert result.returncode == 0, result.stderr[-2000:]
    notices = [line for line in result.stderr.splitlines() if line.startswith("[k8s] tracking:")]
    assert len(notices) == 1
    assert "SQLite at /outputs/mlflow.db" in notices[0] and "logger.tracking_uri=http://" in notices[0]
    assert "MLFLOW_TRACKING_URI is not passed to pods" in notices[0]
    assert "MLFLOW_TRACKING_URI" not in result.stdout and "HostPW" not in result.stdout + result.stderr

    named = _dry_run(tmp_path, "run_id=p2", "+launcher.env.MLFLOW_TRACKING_URI=http://mlflow:5000", host_uri=host_uri)
    assert named.returncode == 0, named.stderr[-2000:]
    assert "[k8s] tracking:" not in named.stderr


# -- whole runs (slow tier) --------------------------------------------------------------------------

def _train_env(root: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "AEGIS_OUTPUT_ROOT": str(root), "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update(extra)
    return env


@pytest.mark.slow
def test_twelve_first_runs_together_on_a_fresh_store_all_complete(tmp_path):
    root = tmp_path / "fresh"
    procs = {
        f"c{i}": subprocess.Popen([sys.executable, str(TRAIN), "trainer=smoke", f"paths.root={root}", f"run_id=c{i}"],
                                  cwd=REPO, env=_train_env(root), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
        for i in range(12)
    }
    outputs = {name: proc.communicate(timeout=1200)[0] for name, proc in procs.items()}
    failed = {name: outputs[name][-3000:] for name, proc in procs.items() if proc.returncode != 0}
    assert not failed, failed

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert sorted(r.data.tags["aegis.run_id"] for r in runs) == sorted(procs)
    assert all("val/acc" in r.data.metrics and r.info.status == "FINISHED" for r in runs)
    versions = client.search_model_versions("name = 'aegis-train'")
    assert sorted(int(v.version) for v in versions) == list(range(1, 13))


@pytest.mark.slow
def test_a_password_in_the_tracking_uri_reaches_the_server_but_no_file_or_output(tmp_path):
    with mlflow_server(tmp_path) as port:
        root = tmp_path / "out"
        uri = f"http://alice:S3cretPW@127.0.0.1:{port}"
        args = [sys.executable, str(TRAIN), "trainer=smoke", "trainer.max_epochs=1", "run_id=k1"]
        env = _train_env(root, MLFLOW_TRACKING_URI=uri)
        runs = [subprocess.run(args + extra, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
                for extra in ([], ["trainer.max_epochs=2", "logger.register_model=false"])]
    for done in runs:
        assert done.returncode == 0, done.stderr[-3000:]
        assert "S3cretPW" not in done.stdout + done.stderr
    leaked = [p for p in root.rglob("*") if p.is_file() and b"S3cretPW" in p.read_bytes()]
    assert leaked == []
    record = summary(next(root.rglob("summary.json")).parent)["tracking"]
    assert record["tracking_uri"] == f"http://alice:***@127.0.0.1:{port}" and record["continued_run"] is True


def _summary_with_attempts(run_dir: Path, count: int) -> None:
    (run_dir / "summary.json").write_text(json.dumps(
        {"status": "running", "attempts": [{"attempt": n + 1, "status": "killed"} for n in range(count)]}))


def test_a_missing_tracking_json_finds_the_run_by_its_tags_with_one_warning(tracking_for, tmp_path, caplog):
    first = tracking_for()
    first.start()
    run_dir = tmp_path / "root" / "runs" / "run1"
    (run_dir / "tracking.json").unlink()
    _summary_with_attempts(run_dir, 2)  # the run dir ran before (this attempt is the second)
    with caplog.at_level(logging.WARNING, logger="aegis.training"):
        again = tracking_for()
        again.start()
    assert again.run_id == first.run_id and again.continued_run
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name == "aegis.training"]
    assert warnings == [f"{run_dir / 'tracking.json'} is missing: continuing MLflow run {first.run_id}, found by "
                        "its tags aegis.run_id=run1 and aegis.run_dir."]
    assert json.loads((run_dir / "tracking.json").read_text())["run_id"] == first.run_id  # healed


def test_a_run_dir_that_never_ran_here_starts_its_own_tracking_run(tracking_for, tmp_path):
    """A run dir deleted and started again under the same run id, or a sweep reusing a run id in
    another dir, does not take over an earlier tracking run."""
    first = tracking_for()
    first.start()
    run_dir = tmp_path / "root" / "runs" / "run1"
    shutil.rmtree(run_dir)
    run_dir.mkdir()
    _summary_with_attempts(run_dir, 1)  # only this attempt
    fresh = tracking_for()
    fresh.start()
    assert fresh.run_id != first.run_id and not fresh.continued_run
    (tmp_path / "root" / "runs" / "run2").mkdir()
    _summary_with_attempts(tmp_path / "root" / "runs" / "run2", 2)
    other = tracking_for(run_id="run2")
    assert other.target.lost_record_of == tmp_path / "root" / "runs" / "run2"
    other.target.tags["aegis.run_id"] = "run1"  # same run id tag, another dir
    other.start()
    assert other.run_id not in (first.run_id, fresh.run_id)


def test_a_run_dir_starting_over_logs_to_a_new_run_that_supersedes_the_old(tracking_for, tmp_path, caplog):
    """Issue 24 item 7: every checkpoint unreadable -> "resuming from nothing (starting over)", and
    the new attempt's metrics at steps the old run already had were dropped (MLflow showed the
    abandoned attempt's values)."""
    from mlflow.tracking import MlflowClient

    first = tracking_for()
    first.start()
    for step in range(3):
        first.logger.log_metrics({"val/acc": 0.1}, step=step)
    with caplog.at_level(logging.WARNING, logger="aegis.training"):
        over = tracking_for(starting_over=True)
        over.start()
    assert over.run_id != first.run_id and not over.continued_run
    over.logger.log_metrics({"val/acc": 0.9}, step=0)  # a step the old run has: logged, not dropped
    run_dir = tmp_path / "root" / "runs" / "run1"
    assert json.loads((run_dir / "tracking.json").read_text())["run_id"] == over.run_id
    assert over.describe()["run_id"] == over.run_id  # what summary.json records for the attempt
    client = MlflowClient(tracking_uri=over.uri)
    assert [m.value for m in client.get_metric_history(over.run_id, "val/acc")] == [0.9]
    old = client.get_run(first.run_id)
    assert old.data.tags["aegis.superseded_by"] == over.run_id and old.info.status == "KILLED"
    assert client.get_run(over.run_id).data.tags["aegis.supersedes"] == first.run_id
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name == "aegis.training"]
    assert len(warnings) == 1 and "starts over in a new MLflow run" in warnings[0]


def test_the_lineage_counts_the_attempts_summary_json_counts(tracking_for, tmp_path):
    """Issue 24 item 8: attempts killed in start-up never reached MLflow, which counted 7 where
    summary.json listed 9."""
    from mlflow.tracking import MlflowClient

    from aegis.training.lineage import ATTEMPTS, Lineage
    from aegis.training.lineage_store import record_run
    from aegis.training.tracking import _summary_attempt

    run_dir = tmp_path / "root" / "runs" / "run1"
    tracking = tracking_for()
    tracking.start()
    client = MlflowClient(tracking_uri=tracking.uri)
    assert record_run(client, tracking.run_id, Lineage({"aegis.image": "a"}, {"config.yaml": "a: 1\n"}), 1) == 1
    # attempts 2 and 3 were killed before they reached MLflow; this is the fourth
    (run_dir / "summary.json").write_text(json.dumps({"attempts": [
        {"attempt": 1, "status": "killed"}, {"attempt": 2, "status": "killed"}, {"attempt": 3, "status": "killed"},
        {"attempt": 4, "status": "running"}]}))
    assert _summary_attempt(run_dir) == 4
    assert record_run(client, tracking.run_id, Lineage({"aegis.image": "a"}, {}), _summary_attempt(run_dir)) == 4
    assert client.get_run(tracking.run_id).data.tags[ATTEMPTS] == "4"
    assert record_run(client, tracking.run_id, Lineage({}, {}), None) == 5  # no record: one more
    assert record_run(client, tracking.run_id, Lineage({}, {}), 2) == 6  # never backwards


# -- a tracking server that is away, or refuses us ---------------------------------------------------

@pytest.fixture()
def mlflow_http_env(monkeypatch):
    """MLflow's HTTP settings as a user who set none has them; put back afterwards."""
    from aegis.training.mlflow_http import BOUNDS

    for name in [*BOUNDS, "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"]:
        monkeypatch.setenv(name, "x")  # recorded, so that the teardown removes what the code sets
        monkeypatch.delenv(name)
    yield monkeypatch


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_server_is_one_warning_line_and_a_bounded_wait(tracking_for, mlflow_http_env, caplog):
    """Issue 24 item 12: with the server gone the run stalled 12 min in MLflow's retries, the
    terminal showing only urllib3's "Retrying" lines."""
    from aegis.training.tracking import TrackingError

    uri = f"http://127.0.0.1:{_closed_port()}"
    mlflow_http_env.setenv("MLFLOW_TRACKING_URI", uri)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        tracking = tracking_for()
        with pytest.raises(TrackingError, match=r"^Opening the MLflow run in http://127\.0\.0\.1:\d+ failed"):
            tracking.start()
    assert time.monotonic() - started < 30
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "does not answer" in warnings[0] and "at most 33 s" in warnings[0], warnings
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"


def test_a_users_own_retry_settings_are_kept(mlflow_http_env):
    from aegis.training.mlflow_http import bound_requests

    mlflow_http_env.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "9")
    bound_requests("https://mlflow.example.com")
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "9" and os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "10"


@pytest.fixture()
def refusing_server():
    """An HTTP server that answers 401 to everything, as a tracking server behind basic auth does."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Refuse(BaseHTTPRequestHandler):
        def _refuse(self) -> None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="mlflow"')
            self.end_headers()
            self.wfile.write(b"You are not authenticated.")

        do_GET = do_POST = do_PATCH = do_DELETE = _refuse

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Refuse)
    serve(server)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_server_answering_401_says_credentials_in_the_run_and_in_aegis_show(tracking_for, mlflow_http_env,
                                                                             refusing_server, tmp_path):
    """Issue 24 item 13: `aegis show` said "MLflow run ... is not in http://..." (and "has no alias
    'champion'") against a server that answered 401."""
    from aegis.show import ShowError, show
    from aegis.training.tracking import TrackingError

    mlflow_http_env.setenv("MLFLOW_TRACKING_URI", refusing_server)
    with pytest.raises(TrackingError, match="needs credentials and none were given .HTTP 401.: set "
                                            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"):
        tracking_for().start()
    with pytest.raises(ShowError, match="needs credentials"):
        show("models:/lin@champion", tmp_path, refusing_server)
    with pytest.raises(ShowError, match="needs credentials"):
        show("0123456789abcdef0123456789abcdef", tmp_path, refusing_server)
    mlflow_http_env.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    mlflow_http_env.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    with pytest.raises(ShowError, match="refused the credentials given"):
        show("models:/lin@champion", tmp_path, refusing_server)


def test_a_failing_run_keeps_its_cause_when_the_server_cannot_end_its_mlflow_run(mlflow_http_env, caplog):
    """Issue 24 item 12: a run failing for a server gone for good named the secondary runs/get
    call of Lightning's finalize (after another round of retries) as its cause."""
    from aegis.training.mlflow_http import bound_requests
    from aegis.training.tracking import _MLFlowLogger

    uri = f"http://127.0.0.1:{_closed_port()}"
    mlflow_http_env.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0.01")  # the cause, not the wait, is tested
    bound_requests(uri)
    logger = _MLFlowLogger(experiment_name="train", tracking_uri=uri, run_id="0" * 32)
    logger._initialized = True  # the run was opened while the server answered
    with caplog.at_level(logging.WARNING, logger="aegis.training"):
        logger.finalize("failed")  # no exception: the run's own error stays its cause
    [warning] = [r.getMessage() for r in caplog.records if r.name == "aegis.training"]
    assert warning.startswith(f"Could not end MLflow run {'0' * 32} as failed: ")
    with pytest.raises(Exception):
        logger.finalize("success")  # a run that succeeded says that its end was not recorded


@pytest.mark.slow
def test_a_slow_tracking_server_never_holds_a_training_step(tracking_for, mlflow_http_env, tmp_path):
    """Issue 24: metrics went to the server inside the step, so every step waited for it."""
    from mlflow.tracking import MlflowClient

    with mlflow_server(tmp_path) as port, delaying_proxy(port, "log-batch", delay_s=1.0) as slow:
        mlflow_http_env.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{slow}")
        tracking = tracking_for()
        tracking.start()
        logger = tracking.lightning_logger
        started = time.monotonic()
        for step in range(5):
            logger.log_metrics({"train/loss": 1.0 / (step + 1)}, step=step)
        held = time.monotonic() - started
        logger.finalize("success")  # drains what is queued before the run ends
        history = MlflowClient(f"http://127.0.0.1:{port}").get_metric_history(logger.run_id, "train/loss")
    assert held < 1.0, f"5 steps' metrics held training {held:.1f} s (each request to the server takes 1 s)"
    assert sorted(m.step for m in history) == [0, 1, 2, 3, 4]


@pytest.mark.slow
def test_a_server_lost_mid_run_is_one_masked_warning_not_a_line_per_step(tracking_for, mlflow_http_env, tmp_path,
                                                                          capfd):
    """With metrics queued, MLflow's own thread logs each refused batch, URL and password
    included, past the run's masking handlers."""
    with mlflow_server(tmp_path) as port:
        mlflow_http_env.setenv("MLFLOW_TRACKING_URI", f"http://alice:S3cretPW@127.0.0.1:{port}")
        tracking = tracking_for()
        tracking.start()
        logger = tracking.lightning_logger
        logger.log_metrics({"train/loss": 1.0}, step=0)
    for step in range(1, 6):  # the server is gone
        logger.log_metrics({"train/loss": 1.0 / (step + 1)}, step=step)
        time.sleep(0.5)
    try:
        logger.finalize("failed")
    except Exception:
        pass
    err = capfd.readouterr().err
    assert "S3cretPW" not in err
    assert err.count("Metrics could not reach the tracking server") == 1, err[-3000:]
    assert err.count("Failed to log run data") == 1  # inside that warning, and never again
