"""Experiment tracking: MLflow by default, CSV or none on request. Rank 0 alone writes.

The MLflow run id is saved in the run dir (``tracking.json``) the moment the run
exists, so a resumed or rescheduled run keeps logging to the same MLflow run.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger
from omegaconf import DictConfig

from aegis.training.files import read_json, write_json

log = logging.getLogger("aegis.training")

TRACKING_FILE = "tracking.json"


class ResumableCSVLogger(CSVLogger):
    """A CSVLogger that keeps the rows of earlier attempts when a run resumes.

    Lightning's writer deletes an existing ``metrics.csv`` when it starts; a resumed run
    should append to it instead, so the file tells the whole run's story.
    """

    @property
    def experiment(self):  # type: ignore[override]
        if self._experiment is not None:
            return self._experiment
        existing = Path(self.log_dir) / "metrics.csv"
        previous = existing.read_text() if existing.is_file() else None
        writer = CSVLogger.experiment.fget(self)
        if previous:
            existing.write_text(previous)
            header = previous.splitlines()[0].split(",")
            writer.metrics_keys = sorted(header)
        return writer


def default_tracking_uri(paths_root: Path) -> str:
    return f"sqlite:///{paths_root / 'mlflow.db'}"


def resolve_tracking_uri(logger_cfg: DictConfig, paths_root: Path) -> str:
    """logger.tracking_uri, else $MLFLOW_TRACKING_URI, else SQLite under paths.root."""
    return logger_cfg.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(paths_root)


def embedded_artifact_location(uri: str, paths_root: Path) -> Optional[str]:
    """Artifacts of the embedded SQLite store live beside it under paths.root (MLflow would
    otherwise put them in ./mlruns of whatever the working directory is); a server
    decides for itself (None)."""
    if not uri.startswith("sqlite:"):
        return None
    paths_root.mkdir(parents=True, exist_ok=True)
    return (paths_root / "mlartifacts").resolve().as_uri()


@dataclass
class Tracking:
    kind: str
    run_dir: Path
    logger: Optional[Logger] = None
    uri: Optional[str] = None
    experiment_name: Optional[str] = None
    continued_run: bool = False
    registered: dict[str, Any] = field(default_factory=dict)

    @property
    def lightning_logger(self) -> Logger | bool:
        return self.logger if self.logger is not None else False

    @property
    def run_id(self) -> Optional[str]:
        if isinstance(self.logger, MLFlowLogger):
            return self.logger.run_id
        return None

    def start(self) -> None:
        """Create (or reopen) the tracking run and record its id in the run dir. Rank 0 only."""
        if not isinstance(self.logger, MLFlowLogger):
            return
        experiment = self.logger.experiment  # creates the experiment and run if needed
        record = {
            "logger": "mlflow",
            "tracking_uri": self.uri,
            "experiment_id": self.logger.experiment_id,
            "run_id": self.logger.run_id,
        }
        write_json(self.run_dir / TRACKING_FILE, record)
        experiment.set_tag(self.logger.run_id, "aegis.run_dir", str(self.run_dir))

    def log_config(self, flat: dict[str, Any]) -> None:
        """Log the resolved config as params once per tracking run (values may not change)."""
        if self.logger is not None and not self.continued_run:
            self.logger.log_hyperparams(flat)

    def log_checkpoint(self, path: Optional[str]) -> None:
        if isinstance(self.logger, MLFlowLogger) and path:
            self.logger.experiment.log_artifact(self.logger.run_id, path, artifact_path="checkpoints")

    def register_model(self, module: Any, name: str) -> None:
        if not isinstance(self.logger, MLFlowLogger):
            return
        import lightning
        import mlflow
        import mlflow.pytorch
        import torch

        mlflow.set_tracking_uri(self.uri)
        # Pickle is chosen on purpose (pt2 needs an input example and a signature);
        # MLflow warns about it on every call.
        logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)
        with mlflow.start_run(run_id=self.logger.run_id):
            info = mlflow.pytorch.log_model(
                module,
                name="model",
                serialization_format="pickle",
                # Given explicitly: inferring them costs ~10 s per run.
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"lightning=={lightning.__version__}"],
                registered_model_name=name,
            )
        self.registered = {"name": name, "version": info.registered_model_version, "model_uri": info.model_uri}
        log.info("Registered model %s version %s", name, info.registered_model_version)

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"logger": self.kind}
        if self.kind == "mlflow":
            info.update(tracking_uri=self.uri, experiment=self.experiment_name, run_id=self.run_id,
                        continued_run=self.continued_run)
            if self.registered:
                info["registered_model"] = self.registered
        elif self.kind == "csv" and self.logger is not None:
            info["metrics_csv"] = str(Path(self.logger.log_dir) / "metrics.csv")
        return info


def build_tracking(
    cfg: DictConfig, run_dir: Path, run_id: str, paths_root: Path, continuing: bool, rank_zero: bool
) -> Tracking:
    kind = cfg.logger.name
    if not rank_zero:
        # Other ranks never log; not even opening the store keeps them from racing rank 0
        # through the SQLite schema migrations.
        return Tracking(kind, run_dir)
    if kind == "csv":
        return Tracking(kind, run_dir, ResumableCSVLogger(save_dir=str(run_dir), name="csv", version=""))
    if kind != "mlflow":
        return Tracking(kind, run_dir)

    logging.getLogger("alembic").setLevel(logging.WARNING)
    uri = resolve_tracking_uri(cfg.logger, paths_root)
    previous = read_json(run_dir / TRACKING_FILE) if continuing else None
    previous_run = previous.get("run_id") if previous and previous.get("tracking_uri") == uri else None
    tags = {"aegis.run_id": run_id, **{str(k): str(v) for k, v in (cfg.logger.get("tags") or {}).items()}}
    logger = MLFlowLogger(
        experiment_name=cfg.logger.experiment_name,
        run_name=cfg.logger.get("run_name") or run_id,
        tracking_uri=uri,
        tags=tags if previous_run is None else None,
        artifact_location=embedded_artifact_location(uri, paths_root),
        run_id=previous_run,
    )
    return Tracking(kind, run_dir, logger, uri, cfg.logger.experiment_name, continued_run=previous_run is not None)

