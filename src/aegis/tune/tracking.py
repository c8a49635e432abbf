"""One MLflow parent run per search; every trial's run is its child.

MLflow nests a run under another through the ``mlflow.parentRunId`` tag, so a trial
only has to carry that tag (the trial adds it to ``logger.tags``); the training's own
tracking is unchanged. The parent is created in the driver, before any trial, which
also lets the driver alone create the experiment and migrate a fresh SQLite store
(concurrent trials would race on it). A resumed search reuses its parent run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig

PARENT_FILE = "tune.json"


def start_parent(cfg: DictConfig, sweep_dir: Path, name: str) -> Optional[dict[str, Any]]:
    if cfg.logger.name != "mlflow":
        return None
    from mlflow.tracking import MlflowClient

    from aegis.redact import mask_url_credentials
    from aegis.training.files import read_json, write_json
    from aegis.training.mlflow_store import prepare_store
    from aegis.training.tracking import embedded_artifact_location, resolve_tracking_uri

    logging.getLogger("alembic").setLevel(logging.WARNING)
    paths_root = Path(cfg.paths.root).resolve()
    uri = resolve_tracking_uri(cfg.logger, paths_root)
    shown = mask_url_credentials(uri)  # what goes to disk; the real URI stays in memory
    record_path = sweep_dir / PARENT_FILE
    record = read_json(record_path)
    if record and record.get("tracking_uri") == shown:
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


def mark_stopped(run_dirs: list[Path], tracking_uri: str) -> None:
    """Trials the scheduler stopped early are KILLED, not FAILED (Lightning closes an MLflow
    run as FAILED on any exception, and Ray Tune stops a trial by raising SystemExit in it).
    Done by the driver after the search: a stopped trial's worker may be gone by then.
    ``tracking_uri`` is the search's own (run dirs keep it with credentials masked)."""
    from aegis.training.files import read_json

    for run_dir in run_dirs:
        summary = read_json(run_dir / "summary.json")
        record = read_json(run_dir / "tracking.json")
        if not summary or summary.get("status") != "stopped" or not record or record.get("logger") != "mlflow":
            continue
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri).set_terminated(record["run_id"], "KILLED")
