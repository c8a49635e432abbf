"""Experiment tracking: MLflow by default, CSV, none or any Lightning logger by class
(``logger._target_``) on request. Rank 0 alone writes.

What Aegis adds (store preparation, lineage, registry, resume by tag) runs where the option's
kind says so (``aegis.core.logger_kind``: ``logger=mlflow``); a logger by class is built as
its class is, with the run dir as its ``save_dir``/``root_dir`` unless the config sets one.

One run dir is one MLflow run. Its id is saved in the run dir (``tracking.json``) the
moment the run exists; a resumed or rescheduled run finds that run in the current store
by its id (or by its ``aegis.run_id`` tag), wherever the store now lives, and keeps
logging to it; a run dir that ran before and lost its ``tracking.json`` finds its run by its
``aegis.run_id`` and ``aegis.run_dir`` tags, with one warning. An unreadable ``tracking.json`` stops the run rather than silently
splitting its metrics over two MLflow runs; ``logger.new_run=true`` starts over on purpose.

Credentials in the tracking URI (``https://user:PW@host`` in $MLFLOW_TRACKING_URI; a config
value with one is refused by validation) are used to connect and are masked everywhere
Aegis writes or prints the URI, and in the first line of any error it records. The rest
of what reaches the store is clean at the source: the params are the validated config, and
MLflow strips credentials from the git remote URL it tags runs with.

Every failure of a public method here is a ``TrackingError`` with a one-sentence message.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, TypeVar

from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger
from omegaconf import DictConfig

from aegis.core import logger_kind
from aegis.redact import find_credential, mask_credentials
from aegis.core.files import read_json, write_json
from aegis.training.mlflow_store import StoreError, prepare_store, registry_lock, retry_transient
from aegis.training.record import SUMMARY_FILE

log = logging.getLogger("aegis.training")

TRACKING_FILE = "tracking.json"
RUN_ID_TAG = "aegis.run_id"
RUN_DIR_TAG = "aegis.run_dir"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"

T = TypeVar("T")


class TrackingError(RuntimeError):
    """Tracking could not start, continue or record; the message is one sentence for the user."""

    explained = True  # aegis.training.run: one error line, no traceback


class ResumableCSVLogger(CSVLogger):
    """A CSVLogger that keeps the rows of earlier attempts when a run resumes.

    Lightning's writer deletes an existing ``metrics.csv`` when it starts; a resumed run
    should append to it instead, so the file tells the whole run's story.
    """

    @property
    def experiment(self):  # type: ignore[override]
        # Remembered in an attribute of this class, not Lightning's private ``_experiment``.
        writer = self.__dict__.get("_aegis_writer")
        if writer is not None:
            return writer
        existing = Path(self.log_dir) / "metrics.csv"
        previous = existing.read_text() if existing.is_file() else None
        writer = CSVLogger.experiment.fget(self)
        if previous and hasattr(writer, "metrics_keys"):  # not the dummy writer of a rank > 0
            existing.write_text(previous)
            header = previous.splitlines()[0].split(",")
            writer.metrics_keys = sorted(header)
        self.__dict__["_aegis_writer"] = writer
        return writer


class _QueuedMetricsFailure(logging.Filter):
    """MLflow's metric queue logs each batch the server refused, with the URL it called
    (password included) and past the run's own masking handlers: here the first failure is
    one masked warning that says training goes on, and the rest are dropped."""

    def __init__(self) -> None:
        super().__init__()
        self.said = False

    def filter(self, record: logging.LogRecord) -> bool:
        from aegis.redact import mask_credentials

        if self.said:
            return False
        self.said = True
        record.msg, record.args = (f"Metrics could not reach the tracking server (training goes on; later failures are "
                                   f"not repeated): {mask_credentials(record.getMessage())}"), None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _quiet_metric_queue() -> None:
    """One ``_QueuedMetricsFailure`` on MLflow's async logging logger, once per process."""
    queue_log = logging.getLogger("mlflow.utils.async_logging.async_logging_queue")
    if not any(isinstance(f, _QueuedMetricsFailure) for f in queue_log.filters):
        queue_log.addFilter(_QueuedMetricsFailure())


class _MLFlowLogger(MLFlowLogger):
    """Lightning's MLFlowLogger, which stops the run's system metrics monitor (if any)
    before it ends the run: the monitor's last samples are flushed while the run is open."""

    system_metrics: Any = None

    def finalize(self, status: str = "success") -> None:
        if self.system_metrics is not None:
            self.system_metrics.finish()
        try:
            super().finalize(status)
        except Exception as exc:
            if status == "success":
                raise
            # The run is already failing (often for this same server): its first error stays the
            # cause, not this second call's. The MLflow run stays RUNNING until a resume ends it.
            text = str(exc).strip()
            log.warning("Could not end MLflow run %s as %s: %s", self.run_id, status,
                        mask_credentials(text.splitlines()[0] if text else type(exc).__name__))


def default_tracking_uri(paths_root: Path) -> str:
    return f"sqlite:///{paths_root / 'mlflow.db'}"


def resolve_tracking_uri(logger_cfg: DictConfig, paths_root: Path) -> str:
    """logger.tracking_uri, else $MLFLOW_TRACKING_URI, else SQLite under paths.root."""
    return logger_cfg.get("tracking_uri") or os.environ.get(TRACKING_URI_ENV) or default_tracking_uri(paths_root)


def embedded_artifact_location(uri: str, paths_root: Path) -> Optional[str]:
    """Artifacts of the embedded SQLite store live beside it under paths.root (MLflow would
    otherwise put them in ./mlruns of whatever the working directory is); a server
    decides for itself (None)."""
    if not uri.startswith("sqlite:"):
        return None
    paths_root.mkdir(parents=True, exist_ok=True)
    return (paths_root / "mlartifacts").resolve().as_uri()


def read_tracking_record(path: Path) -> Optional[dict[str, Any]]:
    """The MLflow run a run dir logs to (``tracking.json``); None when the dir has none yet.

    A file that exists but cannot be read is an error, not "no run": guessing would start a
    second MLflow run and split the run's metrics."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _unreadable(path, exc.strerror or str(exc)) from exc
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise _unreadable(path, f"not JSON: {exc}") from exc
    if not isinstance(record, dict) or not isinstance(record.get("run_id"), str) or not record["run_id"]:
        raise _unreadable(path, "it names no MLflow run id")
    return record


def _unreadable(path: Path, why: str) -> TrackingError:
    return TrackingError(f"{path} cannot be read ({why}); fix or delete it, or pass logger.new_run=true "
                         "to start a new tracking run on purpose.")


@dataclass(frozen=True)
class MLflowTarget:
    """The MLflow run a run dir should log to: where, under which names, and what it had before."""

    uri: str  # as given, credentials included: used to connect, never shown (see ``shown_uri``)
    experiment_name: str
    run_name: str
    tags: dict[str, str]
    artifact_location: Optional[str]
    previous: Optional[dict[str, Any]]  # this run dir's tracking.json, when it continues
    # The run dir, when it ran before but its tracking.json is gone: its run is looked up by its tags.
    lost_record_of: Optional[Path] = None
    system_metrics: bool = False  # logger.system_metrics: MLflow's monitor on this run
    # Every checkpoint of the run dir was unreadable: this attempt trains from nothing, in a new
    # MLflow run (the old one's history holds the abandoned attempts' values at the same steps,
    # and a (metric, step) is logged once: the new attempt's would be dropped).
    starting_over: bool = False

    @property
    def shown_uri(self) -> str:
        return mask_credentials(self.uri)


@dataclass
class Tracking:
    kind: str  # aegis.core.logger_kind.LoggerKind.name: mlflow, csv, none, or a logger's _target_
    run_dir: Path
    logger: Optional[Logger] = None
    uri: Optional[str] = None  # as given, credentials included: connect with it; describe() masks it
    experiment_name: Optional[str] = None
    continued_run: bool = False
    registered: dict[str, Any] = field(default_factory=dict)
    target: Optional[MLflowTarget] = None  # MLflow on rank 0: the run ``start`` opens

    @property
    def lightning_logger(self) -> Logger | bool:
        if self.target is not None and self.logger is None:
            raise TrackingError("The MLflow tracking run is opened by Tracking.start(), which must run "
                                "before the trainer is built.")
        return self.logger if self.logger is not None else False

    @property
    def run_id(self) -> Optional[str]:
        if isinstance(self.logger, MLFlowLogger):
            return self.logger.run_id
        return None

    def start(self) -> None:
        """Prepare the store, open this run dir's MLflow run (continue it, or create it) and
        record its id in the run dir. Rank 0 only."""
        target = self.target
        if target is None:
            return
        if find_credential(target.uri) is not None:
            # MLflow prints a run's URL, built from the URI with its password, when the run ends.
            os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
        from aegis.training.mlflow_http import ServerRefused, bound_requests, is_server, probe

        if is_server(target.uri):  # one warning line at once, and bounded waits, if it does not answer
            bound_requests(target.uri)
            try:
                probe(target.uri)
            except ServerRefused as exc:
                raise TrackingError(str(exc)) from None
        self._call(f"Preparing the MLflow store {target.shown_uri}", lambda: prepare_store(target.uri), retry=False)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=target.uri)
        run_id, experiment_id, continued = self._call(
            f"Opening the MLflow run in {target.shown_uri}", lambda: _open_run(client, target))
        # A server's metrics go from MLflow's own queue and thread (log_batch(synchronous=False)),
        # so a slow or failing server never holds a training step; ending the run drains the
        # queue (MlflowClient.set_terminated). The local SQLite store answers in ~1 ms: no queue.
        if is_server(target.uri):
            _quiet_metric_queue()
        self.logger = logger = _MLFlowLogger(experiment_name=target.experiment_name, tracking_uri=target.uri,
                                            run_id=run_id, artifact_location=target.artifact_location,
                                            synchronous=False if is_server(target.uri) else None)
        with _tracking_env_kept():
            self._call(f"Reopening MLflow run {run_id} for Lightning", lambda: logger.experiment)
        self.continued_run = continued
        if continued:
            from aegis.training.mlflow_steps import log_each_step_once

            log_each_step_once(logger)  # a step re-run after the resume is not logged twice
        record = {"logger": "mlflow", "tracking_uri": target.shown_uri, "experiment_id": experiment_id,
                  "run_id": run_id}
        self._call(f"Writing {self.run_dir / TRACKING_FILE}", lambda: write_json(self.run_dir / TRACKING_FILE, record),
                   retry=False)
        self._call("Tagging the MLflow run with its run dir",
                   lambda: client.set_tag(run_id, RUN_DIR_TAG, str(self.run_dir)))
        if target.system_metrics:
            from aegis.training.system_metrics import SystemMetrics

            logger.system_metrics = self._call("Starting MLflow's system metrics monitor",
                                               lambda: SystemMetrics(client, run_id, target.uri, continued))

    def log_lineage(self, cfg: DictConfig, ctx: Any, world_size: int, num_nodes: int) -> None:
        """This attempt's code, config, launch, data and environment on the MLflow run
        (``aegis.training.lineage``); a resumed run adds to what earlier attempts recorded."""
        if not isinstance(self.logger, MLFlowLogger):
            return
        from aegis.training.lineage import for_attempt
        from aegis.training.lineage_store import record_run

        lineage = for_attempt(cfg, ctx, world_size, num_nodes)
        client, run_id = self.logger.experiment, self.logger.run_id
        number = _summary_attempt(self.run_dir)
        self._call("Recording the run's lineage in MLflow", lambda: record_run(client, run_id, lineage, number))

    def log_config(self, flat: dict[str, Any]) -> None:
        """Log the resolved config as params once per tracking run (values may not change)."""
        if self.logger is not None and not self.continued_run:
            self._call("Logging the config as MLflow params", lambda: self.logger.log_hyperparams(flat))

    def log_checkpoint(self, path: Optional[str]) -> None:
        if isinstance(self.logger, MLFlowLogger) and path:
            logger = self.logger
            self._call(f"Logging checkpoint {path} to MLflow",
                       lambda: logger.experiment.log_artifact(logger.run_id, path, artifact_path="checkpoints"))

    def lineage_callbacks(self) -> list[Any]:
        """On every rank of an MLflow-tracked run: the callback that tells rank 0 where each
        rank runs once fit has set up the process group (``aegis.launch.hosts``)."""
        if self.kind != logger_kind.MLFLOW:
            return []
        from aegis.training.rank_hosts import RankHosts

        return [RankHosts(self._record_hosts if isinstance(self.logger, MLFlowLogger) else None)]

    def _record_hosts(self, ranks: list[dict[str, Any]]) -> None:
        from aegis.training.lineage import HOSTS, hosts_tag
        from aegis.training.lineage_store import add_tags

        assert isinstance(self.logger, MLFlowLogger)
        client, run_id = self.logger.experiment, self.logger.run_id
        self._call("Recording where the ranks run", lambda: add_tags(client, run_id, {HOSTS: hosts_tag(ranks)}))

    def register_model(self, module: Any, name: str, alias: Optional[str] = None) -> None:
        """Log ``module`` to the run, then register it as a new version of ``name`` that
        carries the run's lineage tags, and point ``alias`` (if any) at it.

        Registration is its own step, under the store's lock for an embedded store: runs that
        finish together would otherwise race for the same version number."""
        if not isinstance(self.logger, MLFlowLogger):
            return
        import lightning
        import mlflow
        import mlflow.pytorch
        import torch

        run_id, uri = self.logger.run_id, self.uri
        # Pickle is chosen on purpose (pt2 needs an input example and a signature);
        # MLflow warns about it on every call.
        logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)

        def log_model() -> Any:
            with mlflow.start_run(run_id=run_id):  # the logged model belongs to the run's experiment
                return mlflow.pytorch.log_model(
                    module,
                    name="model",
                    serialization_format="pickle",
                    # Given explicitly: inferring them costs ~10 s per run.
                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}",
                                      f"lightning=={lightning.__version__}"],
                )

        def register() -> Any:
            with registry_lock(uri):
                return mlflow.register_model(info.model_uri, name)

        with _tracking_env_kept():
            mlflow.set_tracking_uri(uri)  # log_model and register_model use MLflow's current URI
            info = self._call(f"Logging the model of MLflow run {run_id}", log_model, retry=False)
            version = self._call(f"Registering the model as {name!r}", register)
        from aegis.training.lineage_store import tag_version

        client = self.logger.experiment
        self._call(f"Tagging version {version.version} of {name!r} with its lineage",
                   lambda: tag_version(client, name, str(version.version), run_id, alias))
        self.registered = {"name": name, "version": int(version.version), "model_uri": info.model_uri,
                           **({"alias": alias, "alias_uri": f"models:/{name}@{alias}"} if alias else {})}
        log.info("Registered model %s version %s", name, version.version)

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"logger": self.kind}
        if self.kind == "mlflow":
            info.update(tracking_uri=mask_credentials(self.uri) if self.uri else None,
                        experiment=self.experiment_name, run_id=self.run_id, continued_run=self.continued_run)
            if self.registered:
                info["registered_model"] = self.registered
        elif self.kind == "csv" and self.logger is not None:
            info["metrics_csv"] = str(Path(self.logger.log_dir) / "metrics.csv")
        elif self.logger is not None and isinstance(getattr(self.logger, "log_dir", None), str):
            info["log_dir"] = self.logger.log_dir  # a logger by class: where its files are
        return info

    @staticmethod
    def _call(what: str, action: Callable[[], T], retry: bool = True) -> T:
        """``action()``, retried while the store is busy; any other failure is one TrackingError line."""
        try:
            return retry_transient(action, what) if retry else action()
        except TrackingError:
            raise
        except StoreError as exc:  # already one sentence naming the file
            raise TrackingError(str(exc)) from exc
        except Exception as exc:
            from aegis.training.mlflow_http import CREDENTIAL_VARS, is_credentials_failure

            if is_credentials_failure(exc):
                raise TrackingError(f"{what} failed: the server refused the credentials (HTTP 401/403): set "
                                    f"{CREDENTIAL_VARS} for an account it accepts.") from None
            text = str(exc).strip()
            reason = mask_credentials(text.splitlines()[0] if text else type(exc).__name__).rstrip(".")
            raise TrackingError(f"{what} failed: {reason}.") from exc


def _summary_attempt(run_dir: Path) -> Optional[int]:
    """This attempt's number in ``summary.json`` (written as running before tracking starts), so
    that MLflow counts the attempts the run dir counts, those killed before they reached MLflow
    included; None when the record has none."""
    attempts = (read_json(run_dir / SUMMARY_FILE) or {}).get("attempts")
    last = attempts[-1] if isinstance(attempts, list) and attempts else None
    number = last.get("attempt") if isinstance(last, dict) else None
    return number if isinstance(number, int) and not isinstance(number, bool) and number > 0 else None


@contextmanager
def _tracking_env_kept() -> Iterator[None]:
    """``mlflow.set_tracking_uri`` (Lightning's logger calls it) also exports $MLFLOW_TRACKING_URI;
    a later run in this process (a multirun job, a test) would take this run's store for the
    user's choice. The variable is put back as it was."""
    before = os.environ.get(TRACKING_URI_ENV)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(TRACKING_URI_ENV, None)
        else:
            os.environ[TRACKING_URI_ENV] = before


def _open_run(client: Any, target: MLflowTarget) -> tuple[str, str, bool]:
    """(run id, experiment id, continued): the run this run dir logged to before, if the store
    has it, else a new one."""
    earlier = None
    if target.previous is not None:
        run, why = _find_previous_run(client, target)
        if run is not None and not target.starting_over:
            return run.info.run_id, run.info.experiment_id, True
        if run is None:
            log.warning("Starting a new MLflow run: %s", why)
        earlier = run
    elif target.lost_record_of is not None:
        run = _find_run_of_dir(client, target, target.lost_record_of)
        if run is not None and not target.starting_over:
            log.warning("%s is missing: continuing MLflow run %s, found by its tags %s=%s and %s.",
                        target.lost_record_of / TRACKING_FILE, run.info.run_id, RUN_ID_TAG, target.tags[RUN_ID_TAG],
                        RUN_DIR_TAG)
            return run.info.run_id, run.info.experiment_id, True
        earlier = run
    from mlflow.tracking.context.registry import resolve_tags

    experiment_id = _experiment_id(client, target)
    tags = dict(target.tags)
    if earlier is not None:
        tags[SUPERSEDES_TAG] = earlier.info.run_id
    run = client.create_run(experiment_id, run_name=target.run_name, tags=resolve_tags(tags))
    if earlier is not None:
        _supersede(client, earlier, run.info.run_id)
    return run.info.run_id, experiment_id, False


SUPERSEDES_TAG = "aegis.supersedes"  # on a run that started over: the run it replaces
SUPERSEDED_BY_TAG = "aegis.superseded_by"  # on that run: the one that replaced it


def _supersede(client: Any, earlier: Any, new_run_id: str) -> None:
    """The run dir's earlier MLflow run, abandoned with its checkpoints: tagged with the run that
    replaces it and ended (KILLED) if a killed attempt left it RUNNING."""
    client.set_tag(earlier.info.run_id, SUPERSEDED_BY_TAG, new_run_id)
    if earlier.info.status == "RUNNING":
        client.set_terminated(earlier.info.run_id, status="KILLED")
    log.warning("Every checkpoint of this run dir was unreadable, so this attempt starts over in a new MLflow "
                "run %s; run %s keeps the abandoned attempts' metrics (tagged %s).", new_run_id,
                earlier.info.run_id, SUPERSEDED_BY_TAG)


def _find_previous_run(client: Any, target: MLflowTarget) -> tuple[Any, str]:
    """The earlier run, by its id, else by its ``aegis.run_id`` tag; (None, why) when the store lacks it.

    The URI recorded in tracking.json is not compared: a moved outputs root (or a masked
    password) changes the string, not the store."""
    assert target.previous is not None
    recorded = target.previous["run_id"]
    run = _get_run(client, recorded)
    if run is not None and run.info.lifecycle_stage == "active":
        if target.previous.get("tracking_uri") != target.shown_uri:
            log.info("Continuing MLflow run %s, found in %s", recorded, target.shown_uri)
        return run, ""
    if run is not None:
        return None, f"MLflow run {recorded} of this run dir is deleted in {target.shown_uri}"
    aegis_run_id = target.tags[RUN_ID_TAG]
    experiment = client.get_experiment_by_name(target.experiment_name)
    if experiment is not None and "'" not in aegis_run_id:
        tagged = client.search_runs([experiment.experiment_id], f"tags.`{RUN_ID_TAG}` = '{aegis_run_id}'",
                                    max_results=2)
        if len(tagged) == 1:
            log.info("Continuing MLflow run %s (tagged %s=%s), found in %s", tagged[0].info.run_id, RUN_ID_TAG,
                     aegis_run_id, target.shown_uri)
            return tagged[0], ""
        if tagged:
            return None, (f"MLflow run {recorded} is not in {target.shown_uri}, and several runs there are tagged "
                          f"{RUN_ID_TAG}={aegis_run_id}")
    return None, f"MLflow run {recorded} of this run dir is not in {target.shown_uri}"


def _find_run_of_dir(client: Any, target: MLflowTarget, run_dir: Path) -> Any:
    """The one active run of this experiment tagged with this run's id and this run dir (a
    sweep that reuses a run id elsewhere has other dirs), else None."""
    aegis_run_id, where = target.tags[RUN_ID_TAG], str(run_dir)
    experiment = client.get_experiment_by_name(target.experiment_name)
    if experiment is None or "'" in aegis_run_id or "'" in where:
        return None
    tagged = client.search_runs([experiment.experiment_id],
                                f"tags.`{RUN_ID_TAG}` = '{aegis_run_id}' and tags.`{RUN_DIR_TAG}` = '{where}'",
                                max_results=2)
    return tagged[0] if len(tagged) == 1 else None


def ran_before(run_dir: Path) -> bool:
    """The run dir holds an earlier attempt: a checkpoint, or an attempt before this one in
    ``summary.json`` (this attempt is recorded there before tracking starts)."""
    if any((run_dir / "checkpoints").glob("*.ckpt")):
        return True
    attempts = (read_json(run_dir / SUMMARY_FILE) or {}).get("attempts")
    return isinstance(attempts, list) and len(attempts) > 1


def _get_run(client: Any, run_id: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def _experiment_id(client: Any, target: MLflowTarget) -> str:
    """The experiment's id, creating it if needed; runs starting together may both try to create it."""
    from mlflow.exceptions import MlflowException

    name = target.experiment_name
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=target.artifact_location)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = client.get_experiment_by_name(name)  # another run created it a moment ago
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        raise TrackingError(f"The MLflow experiment {name!r} is deleted in {target.shown_uri}; restore it "
                            f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) or choose "
                            "another logger.experiment_name.")
    return experiment.experiment_id


def build_tracking(
    cfg: DictConfig, run_dir: Path, run_id: str, paths_root: Path, continuing: bool, rank_zero: bool,
    starting_over: bool = False,
) -> Tracking:
    """What this rank tracks with; nothing is opened yet (``Tracking.start`` does, on rank 0).
    ``starting_over``: the run dir ran before but none of its checkpoints could be read.

    Raises TrackingError for an unreadable ``tracking.json`` of a continuing run dir."""
    option = logger_kind.of(cfg.logger)
    kind = option.name
    if not rank_zero:
        # Other ranks never log; not even opening the store keeps them from racing rank 0.
        return Tracking(kind, run_dir)
    if option.target is not None:
        return Tracking(kind, run_dir, build_logger(cfg.logger, run_dir))
    if kind == logger_kind.CSV:
        return Tracking(kind, run_dir, ResumableCSVLogger(save_dir=str(run_dir), name="csv", version=""))
    if not option.mlflow:
        return Tracking(kind, run_dir)

    logging.getLogger("alembic").setLevel(logging.WARNING)
    uri = resolve_tracking_uri(cfg.logger, paths_root)
    new_run = bool(cfg.logger.get("new_run", False))
    previous = read_tracking_record(run_dir / TRACKING_FILE) if continuing and not new_run else None
    target = MLflowTarget(
        uri=uri,
        experiment_name=cfg.logger.experiment_name,
        run_name=cfg.logger.get("run_name") or run_id,
        tags={**{str(k): str(v) for k, v in (cfg.logger.get("tags") or {}).items()}, RUN_ID_TAG: run_id},
        artifact_location=embedded_artifact_location(uri, paths_root),
        previous=previous,
        lost_record_of=run_dir if continuing and not new_run and previous is None and ran_before(run_dir) else None,
        system_metrics=bool(cfg.logger.get("system_metrics", False)),
        starting_over=starting_over,
    )
    return Tracking(kind, run_dir, uri=uri, experiment_name=cfg.logger.experiment_name, target=target)


def build_logger(node: DictConfig, run_dir: Path) -> Logger:
    """A Lightning logger given by class (``logger._target_``), checked against its signature
    as a callback is, with ``save_dir``/``root_dir`` the run dir where the class takes one and
    the config leaves it out, so its files land with the run's on every launcher."""
    import inspect

    from hydra.utils import get_object
    from omegaconf import OmegaConf

    from aegis.errors import ConfigError
    from aegis.training.components import build

    target = get_object(node._target_)  # importable: check_targets imported it before anything ran
    taken = inspect.signature(target).parameters
    values = OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    for key in logger_kind.RUN_DIR_ARGS:
        if key in taken and values.get(key) is None:
            values[key] = str(run_dir)
    logger = build(OmegaConf.create(values), "logger")
    if not isinstance(logger, Logger):
        raise ConfigError(f"logger._target_={node._target_} builds a {type(logger).__name__}, not a Lightning "
                          "logger: expected a subclass of lightning.pytorch.loggers.Logger.")
    return logger
