"""The failure of a Kubernetes job on its tracked MLflow run, from the submitting machine.

A pod that is OOM-killed, evicted or never started cannot tag its own MLflow run: the
process that would have is gone. The follower knows why (``aegis.k8s.triage``); when the
pods track to a store this machine reaches as well (``logger.tracking_uri`` naming a server,
or a path that exists here), it finds the run by its ``aegis.run_id`` tag, sets
``Failure.tags()`` and ends the run FAILED. A run that already carries a failure was
tagged by the pod itself (a Python exception, with its traceback): it is left alone.
MLflow is imported only here, after a job failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlparse

from omegaconf import DictConfig, OmegaConf

from aegis.core import logger_kind
from aegis.failures.record import TAG_PREFIX, Failure

RUN_ID_TAG = "aegis.run_id"  # aegis.training.tracking.RUN_ID_TAG (that module imports lightning)
_LOCAL = ("", "file", "sqlite")


def store(cfg: DictConfig) -> Optional[dict[str, str]]:
    """Where the pods track, when the config names it (``logger.tracking_uri``); None otherwise
    (the embedded store on the outputs volume, or no MLflow)."""
    logger = cfg.get("logger")
    if not logger_kind.of(logger).mlflow or not logger.get("tracking_uri"):
        return None
    return {"uri": str(logger.tracking_uri), "experiment": str(OmegaConf.to_container(logger.experiment_name, resolve=True)
                                                   if isinstance(logger.experiment_name, DictConfig) else logger.experiment_name)}


def _reachable(uri: str) -> bool:
    """A server is assumed reachable; a file or SQLite store only where its path exists here
    (a shared file system mounted at the same path)."""
    parsed = urlparse(uri)
    if parsed.scheme not in _LOCAL:
        return True
    return Path(parsed.path if parsed.scheme != "sqlite" else uri.split(":///", 1)[-1]).exists()


def reachable(where: Optional[dict[str, Any]], run_id: Optional[str]) -> bool:
    """Whether this machine can write to the store the job's pods track to."""
    return bool(where and run_id and _reachable(where["uri"]))


def tracked_runs(where: dict[str, Any], run_id: str) -> tuple[Any, list[Any]]:
    """(an MlflowClient, the runs tagged ``aegis.run_id=run_id`` in the pods' experiment)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=where["uri"])
    experiment = client.get_experiment_by_name(where["experiment"])
    runs = [] if experiment is None or "'" in run_id else client.search_runs(
        [experiment.experiment_id], f"tags.`{RUN_ID_TAG}` = '{run_id}'", max_results=10)
    return client, runs


def tag(where: Optional[dict[str, Any]], run_id: Optional[str], failure: Failure) -> Optional[str]:
    """Tag the job's tracked run with ``failure``; a line for the terminal, or None when
    there is nothing to tag from here."""
    if not reachable(where, run_id):
        return None
    try:
        client, runs = tracked_runs(where, run_id)  # type: ignore[arg-type]
        if not runs:
            return (f"no MLflow run tagged {RUN_ID_TAG}={run_id} in experiment {where['experiment']} "
                    "to record the failure on")
        tagged = []
        for run in runs:
            if f"{TAG_PREFIX}cause" in run.data.tags:
                continue  # the pod recorded its own failure
            for key, value in failure.tags().items():
                client.set_tag(run.info.run_id, key, value)
            if run.info.status == "RUNNING":
                client.set_terminated(run.info.run_id, status="FAILED")
            tagged.append(run.info.run_id)
    except Exception as exc:  # the terminal still says it
        said = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        return f"could not tag the MLflow run with the failure: {said}"
    if not tagged:
        return None
    return f"MLflow run {', '.join(tagged)}: tagged {TAG_PREFIX}* and ended FAILED"
