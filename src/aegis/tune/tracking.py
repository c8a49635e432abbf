"""One MLflow parent run per search; every trial's run is its child.

MLflow nests a run under another through the ``mlflow.parentRunId`` tag, so a trial
only has to carry that tag (the trial adds it to ``logger.tags``); the training's own
tracking is unchanged. The parent is created in the driver, before any trial, which
also lets the driver alone create the experiment and migrate a fresh SQLite store
(concurrent trials would race on it). A resumed search reuses its parent run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig

from aegis.core import logger_kind

log = logging.getLogger("aegis.tune")

PARENT_FILE = "tune.json"


def start_parent(cfg: DictConfig, sweep_dir: Path, name: str) -> Optional[dict[str, Any]]:
    if not logger_kind.of(cfg.logger).mlflow:
        return None
    from mlflow.tracking import MlflowClient

    from aegis.redact import mask_url_credentials
    from aegis.core.files import read_json, write_json
    from aegis.training.mlflow_store import prepare_store
    from aegis.training.tracking import embedded_artifact_location, resolve_tracking_uri

    logging.getLogger("alembic").setLevel(logging.WARNING)
    paths_root = Path(cfg.paths.root).resolve()
    uri = resolve_tracking_uri(cfg.logger, paths_root)
    shown = mask_url_credentials(uri)  # what goes to disk; the real URI stays in memory
    if shown != uri:  # MLflow prints "View run ... at: <the URI, password included>" when a run ends
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    record_path = sweep_dir / PARENT_FILE
    record = read_json(record_path)
    if record and record.get("tracking_uri") == shown:
        MlflowClient(uri).update_run(record["run_id"], status="RUNNING")  # a resumed search, KILLED when interrupted
        return {**record, "tracking_uri": uri}
    prepare_store(uri)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(cfg.logger.experiment_name)
    if experiment is None:
        experiment_id = client.create_experiment(
            cfg.logger.experiment_name, artifact_location=embedded_artifact_location(uri, paths_root)
        )
    else:
        experiment_id = experiment.experiment_id
    run = client.create_run(experiment_id, run_name=name, tags={"aegis.sweep_dir": str(sweep_dir),
                                                                "aegis.kind": "search"})
    record = {"tracking_uri": shown, "experiment_id": experiment_id, "run_id": run.info.run_id}
    write_json(record_path, record)
    return {**record, "tracking_uri": uri}


def finish_parent(record: Optional[dict[str, Any]], best: Optional[dict[str, Any]], files: list[Path],
                  ok: bool) -> None:
    if not record:
        return
    from mlflow.tracking import MlflowClient

    client = MlflowClient(record["tracking_uri"])
    run_id = record["run_id"]
    if best:
        if best.get("value") is not None:
            client.log_metric(run_id, f"best/{best['metric']}", float(best["value"]))
        for key, value in (best.get("params") or {}).items():
            try:
                client.log_param(run_id, f"best.{key}", value)
            except Exception:  # a param logged by an earlier attempt of a resumed search
                pass
        client.set_tag(run_id, "aegis.best_command", best["command"])
    for path in files:
        if path.is_file():
            client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, "FINISHED" if ok else "FAILED")


def mark_outcomes(trials: list[Any], parent: dict[str, Any], run_id: str, sweep_dir: Path) -> None:
    """Close every trial's MLflow run as it ended (``aegis.tune.outcomes`` named it).

    Lightning closes an MLflow run as FAILED on any exception, and Ray Tune stops a trial
    by raising SystemExit in it: a trial ASHA stopped, or one the interrupt cut short, is
    KILLED instead. A crashed trial is FAILED with the failure's tags (``aegis.failures.record.*``);
    one that crashed before its tracking started gets a child run of its own, so every
    trial has one. A run dir a resumed search set aside (``<n>.lost-<trial id>``: a trial
    Ray Tune lost in a kill -9) is no trial: its run is deleted. Done by the driver after
    the search: a trial's worker may be gone by then. ``parent["tracking_uri"]`` is the
    search's own (run dirs keep it with credentials masked).
    """
    from mlflow.tracking import MlflowClient

    from aegis.failures.record import Failure
    from aegis.core.files import read_json

    client = MlflowClient(parent["tracking_uri"])
    for trial in trials:
        if trial.run_dir is None:
            continue
        record = read_json(trial.run_dir / "tracking.json")
        if record is not None and record.get("logger") != "mlflow":
            continue
        mlflow_run = record["run_id"] if record else None
        if trial.status in ("stopped", "interrupted") and mlflow_run:
            client.set_terminated(mlflow_run, "KILLED")
        elif trial.status == "failed":
            if mlflow_run is None:
                mlflow_run = client.create_run(parent["experiment_id"], run_name=f"{run_id}-{trial.number}", tags={
                    "mlflow.parentRunId": parent["run_id"], "aegis.run_id": f"{run_id}-{trial.number}",
                    "aegis.run_dir": str(trial.run_dir), "aegis.trial_id": trial.trial_id,
                    "aegis.trial_number": str(trial.number)}).info.run_id
            if trial.failure:
                for key, value in Failure.from_dict(trial.failure).tags().items():
                    client.set_tag(mlflow_run, key, value)
            client.set_terminated(mlflow_run, "FAILED")
    for lost in sweep_dir.glob("*.lost-*"):
        record = read_json(lost / "tracking.json")
        if record and record.get("logger") == "mlflow":
            client.delete_run(record["run_id"])


def mark_parent_interrupted(record: Optional[dict[str, Any]]) -> None:
    """An interrupted search's parent run is KILLED until the search resumes (and reopens it)."""
    if record:
        from mlflow.tracking import MlflowClient

        MlflowClient(record["tracking_uri"]).set_terminated(record["run_id"], "KILLED")


def fail_parent(record: Optional[dict[str, Any]], exc: BaseException) -> None:
    """A search that stopped on an error (its Ray cluster unreachable, Ray itself failing): the
    parent run ends FAILED with the cause as ``aegis.failures.record.*`` tags, never left RUNNING."""
    if not record:
        return
    from mlflow.tracking import MlflowClient

    from aegis.failures.record import Failure

    message = str(exc).strip()
    failure = Failure(cause=message.splitlines()[0] if message else type(exc).__name__,
                      exception=type(exc).__name__, message=message or None)
    try:
        client = MlflowClient(record["tracking_uri"])
        for key, value in failure.tags().items():
            client.set_tag(record["run_id"], key, value)
        client.set_terminated(record["run_id"], "FAILED")
    except Exception as tracking_error:  # the search's own error is the one to report
        log.warning("Could not mark the search's MLflow run failed: %s", tracking_error)
