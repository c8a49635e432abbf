"""``aegis show``: what produced a run, or a registered model version.

    aegis show RUN                    a run id, unique prefix or run dir (its tracking.json names
                                      the MLflow run), or an MLflow run id
    aegis show models:/NAME@ALIAS     a registered version (or models:/NAME/VERSION): its source
                                      run, and the lineage it carries

The lineage is what ``aegis.training.lineage`` recorded on the MLflow run: commit,
reproduce command, launch, image, data, versions, the config artifacts and the attempts.
Reads only: no torch, no Hydra, and a missing embedded store is an error, never created.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from aegis.errors import AegisError
from aegis.redact import mask_credentials
from aegis.runs import RunNotFound, find_run

TRACKING_FILE = "tracking.json"  # aegis.training.tracking.TRACKING_FILE (that module imports Lightning)
_MLFLOW_RUN_ID = re.compile(r"[0-9a-f]{32}")
_MODEL_URI = re.compile(r"models:/(?P<name>[^@/]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))$")


class ShowError(AegisError):
    """What ``aegis show`` was asked for cannot be found or read; one sentence."""


@dataclass
class Shown:
    """Everything ``aegis show`` prints, as plain data (``--json`` prints this)."""

    tracking_uri: str
    run_id: Optional[str] = None
    run: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    model: Optional[dict[str, Any]] = None
    manifest: Optional[str] = None  # a cluster job's rendered manifest, in its run dir on this machine

    def as_dict(self) -> dict[str, Any]:
        return {"tracking_uri": mask_credentials(self.tracking_uri), "run_id": self.run_id, "run": self.run,
                "model": self.model, "lineage": self.tags, "artifacts": self.artifacts,
                "registered_versions": self.versions, "manifest": self.manifest}


def default_uri(root: Path) -> str:
    """$MLFLOW_TRACKING_URI, else the embedded store under the outputs root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / 'mlflow.db'}"


def _client(uri: str) -> Any:
    from aegis.training.mlflow_store import sqlite_path

    path = sqlite_path(uri)
    if path is not None and not path.is_file():
        raise ShowError(f"The MLflow store {path} does not exist: expected --tracking-uri URI (or "
                        "$MLFLOW_TRACKING_URI) naming the store the run logged to, or --root DIR holding mlflow.db.")
    from mlflow.tracking import MlflowClient

    from aegis.training.mlflow_http import bound_requests

    bound_requests(uri)  # a server that is away: seconds, not minutes of retries
    return MlflowClient(tracking_uri=uri)


def _refused(exc: BaseException, uri: str) -> None:
    """A 401/403 is the credentials' problem, not a missing run or alias."""
    from aegis.training.mlflow_http import credentials_sentence, is_credentials_failure

    if is_credentials_failure(exc):
        raise ShowError(credentials_sentence(uri, getattr(exc, "get_http_status_code", lambda: 401)()) + ".") \
            from None


def _manifest(run_dir: Path) -> Optional[str]:
    """The manifest the Kubernetes launcher wrote beside job.json when it submitted (``<kind>.yaml``)."""
    try:
        kind = str(json.loads((run_dir / "job.json").read_text()).get("kind") or "process")
    except (OSError, ValueError, AttributeError):
        return None
    path = run_dir / f"{kind.lower()}.yaml"
    return str(path) if kind != "process" and path.is_file() else None


def _run_of_dir(name: str, root: Path, uri: Optional[str]) -> Optional[tuple[str, str, Optional[str], Path]]:
    """(MLflow run id or None, tracking URI, Aegis run id) of an Aegis run dir; None when
    ``name`` names no run dir. A cluster job's run dir on this machine has no tracking.json
    (its pods wrote theirs on the outputs volume): its MLflow run is found by its
    ``aegis.run_id`` tag instead."""
    try:
        run = find_run(name, root)
    except RunNotFound:
        return None
    try:
        record = json.loads((run.path / TRACKING_FILE).read_text())
    except OSError:
        if (run.path / "job.json").is_file():
            return None, uri or default_uri(root), run.run_id, run.path
        raise ShowError(f"Run {run.run_id} ({run.path}) has no {TRACKING_FILE}: it was not tracked with MLflow "
                        "(logger=csv or none), or it stopped before tracking started.") from None
    except ValueError as exc:
        raise ShowError(f"{run.path / TRACKING_FILE} cannot be read (not JSON: {exc}).") from None
    recorded = str(record.get("tracking_uri") or "")
    # A URI shown with its password masked cannot connect: the environment's does.
    chosen = uri or (recorded if recorded and "***" not in recorded else default_uri(root))
    return str(record["run_id"]), chosen, run.run_id, run.path


def _tagged_run(client: Any, aegis_run_id: str, uri: str) -> str:
    """The MLflow run tagged ``aegis.run_id=<id>`` in any experiment of the store."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, f"tags.`aegis.run_id` = '{aegis_run_id}'", max_results=2) \
        if experiments and "'" not in aegis_run_id else []
    if len(runs) != 1:
        found = "no MLflow run" if not runs else "several MLflow runs"
        raise ShowError(f"{found} in {mask_credentials(uri)} is tagged aegis.run_id={aegis_run_id} (a cluster job's "
                        "pods track to the store they were given): expected --tracking-uri URI naming that store.")
    return str(runs[0].info.run_id)


def show(target: str, root: Path, uri: Optional[str] = None) -> Shown:
    model = _MODEL_URI.match(target)
    if target.startswith("models:/") and model is None:
        raise ShowError(f"{target} is not a registered model URI: expected models:/NAME@ALIAS or models:/NAME/VERSION.")
    if model is not None:
        return _show_version(model.group("name"), model.group("alias"), model.group("version"),
                             uri or default_uri(root))
    found = _run_of_dir(target, root, uri)
    if found is None:
        if not _MLFLOW_RUN_ID.fullmatch(target):
            raise ShowError(f"No run {target!r} under {root}: expected a run id or run dir (see `aegis list`), an "
                            "MLflow run id, or models:/NAME@ALIAS; --root DIR sets where runs live.")
        found = (target, uri or default_uri(root), None, None)
    run_id, chosen, aegis_run_id, run_dir = found
    client = _client(chosen)
    if not run_id:
        from mlflow.exceptions import MlflowException

        try:
            run_id = _tagged_run(client, str(aegis_run_id), chosen)
        except MlflowException as exc:
            _refused(exc, chosen)
            raise
    shown = Shown(chosen, run_id)
    shown.manifest = _manifest(run_dir) if run_dir is not None else None
    _fill_run(shown, client)
    return shown


def _fill_run(shown: Shown, client: Any) -> None:
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(shown.run_id)
    except MlflowException as exc:
        _refused(exc, shown.tracking_uri)
        raise ShowError(f"MLflow run {shown.run_id} is not in {mask_credentials(shown.tracking_uri)}: expected "
                        "--tracking-uri URI naming the store it logged to.") from None
    experiment = client.get_experiment(run.info.experiment_id)
    shown.run = {"status": run.info.status, "experiment": experiment.name if experiment else run.info.experiment_id,
                 "name": run.info.run_name}
    shown.tags = {k: v for k, v in sorted(run.data.tags.items()) if not k.startswith("mlflow.") or
                  k.startswith("mlflow.source.")}
    shown.artifacts = sorted(a.path for a in client.list_artifacts(shown.run_id)
                             if a.path in ("config.yaml", "overrides.yaml"))
    shown.artifacts += sorted(a.path for a in client.list_artifacts(shown.run_id, "lineage"))
    for found in client.search_model_versions(f"run_id = '{shown.run_id}'"):
        version = client.get_model_version(found.name, found.version)  # a search leaves aliases out
        shown.versions.append({"name": version.name, "version": str(version.version),
                               "aliases": list(version.aliases or [])})


def _show_version(name: str, alias: Optional[str], number: Optional[str], uri: str) -> Shown:
    from mlflow.exceptions import MlflowException

    client = _client(uri)
    try:
        version = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, number)
    except MlflowException as exc:
        _refused(exc, uri)
        what = f"alias {alias!r}" if alias else f"version {number}"
        raise ShowError(f"Registered model {name!r} has no {what} in {mask_credentials(uri)}: expected an existing "
                        f"alias or version (mlflow's UI, or `aegis show RUN` lists a run's versions).") from None
    shown = Shown(uri, version.run_id)
    shown.model = {"name": name, "version": str(version.version), "aliases": list(version.aliases or []),
                   "source": version.source, "run_id": version.run_id}
    if version.run_id:
        try:
            _fill_run(shown, client)
        except ShowError:  # the run was deleted: the version's own tags still tell its lineage
            shown.run = {"status": "not in the store"}
    if not shown.tags:
        shown.tags = dict(sorted(version.tags.items()))
    return shown


def _get(tags: dict[str, str], *keys: str) -> list[str]:
    return [tags[k] for k in keys if tags.get(k)]


def lines(shown: Shown) -> list[tuple[str, str]]:
    """(label, value) rows of the lineage, in the order a person reads it."""
    t = shown.tags
    rows: list[tuple[str, str]] = []
    if shown.model:
        m = shown.model
        aliases = f" (@{', @'.join(m['aliases'])})" if m["aliases"] else ""
        rows.append(("model", f"models:/{m['name']}/{m['version']}{aliases}"))
    if shown.run_id:
        run = shown.run
        rows.append(("mlflow run", f"{shown.run_id} in experiment {run.get('experiment', '?')}, "
                                   f"{str(run.get('status', '?')).lower()}"))
    rows.append(("tracking", mask_credentials(shown.tracking_uri)))
    if t.get("aegis.run_dir"):
        rows.append(("run dir", t["aegis.run_dir"]))
    if t.get("mlflow.source.git.commit"):
        extra = ", ".join(x for x in (f"branch {t['mlflow.source.git.branch']}" if t.get("mlflow.source.git.branch")
                                      else "", "dirty" if t.get("aegis.git.dirty") == "true" else "clean") if x)
        rows.append(("commit", f"{t['mlflow.source.git.commit']} ({extra})"))
        if t.get("mlflow.source.git.repoURL"):
            rows.append(("repository", t["mlflow.source.git.repoURL"]))
    elif t.get("aegis.git"):
        rows.append(("commit", f"none: {t['aegis.git']}"))
    if t.get("aegis.reproduce"):
        rows.append(("reproduce", t["aegis.reproduce"]))
    launch = [f"launcher {t['aegis.launch.launcher']}"] if t.get("aegis.launch.launcher") else []
    launch += [f"world size {t['aegis.launch.world_size']}"] if t.get("aegis.launch.world_size") else []
    launch += [f"nodes {t['aegis.launch.nodes']}"] if t.get("aegis.launch.nodes") else []
    launch += [f"rank 0 on {t['aegis.launch.host']}"] if t.get("aegis.launch.host") else []
    launch += [f"node {t['aegis.launch.node_name']}"] if t.get("aegis.launch.node_name") else []
    if launch:
        rows.append(("launch", ", ".join(launch)))
    if t.get("aegis.launch.hosts"):
        rows.append(("ranks", t["aegis.launch.hosts"]))
    if shown.manifest:
        rows.append(("manifest", shown.manifest))
    if t.get("aegis.image"):
        digest = t.get("aegis.image.digest")
        rows.append(("image", t["aegis.image"] + ("" if not digest or digest in t["aegis.image"] else f" ({digest})")))
    if t.get("aegis.data.source") or t.get("aegis.data.module"):
        data = t.get("aegis.data.source") or f"{t['aegis.data.module']} (built in)"
        rows.append(("data", data + (f", sha256 {t['aegis.data.sha256']}" if t.get("aegis.data.sha256") else "")))
    env = [f"{name} {t['aegis.env.' + key]}" for name, key in (("python", "python"), ("torch", "torch"),
                                                                ("lightning", "lightning"), ("cuda", "cuda"),
                                                                ("mlflow", "mlflow")) if t.get("aegis.env." + key)]
    if t.get("aegis.env.gpu"):
        env.append(t["aegis.env.gpu"])
    if env:
        rows.append(("environment", ", ".join(env)))
    if shown.artifacts:
        rows.append(("artifacts", ", ".join(shown.artifacts)))
    if t.get("aegis.lineage.attempts"):
        rows.append(("attempts", t["aegis.lineage.attempts"]))
    if t.get("aegis.lineage.changed"):
        rows.append(("changed", t["aegis.lineage.changed"]))
    for version in shown.versions:
        aliases = f" (@{', @'.join(version['aliases'])})" if version["aliases"] else ""
        rows.append(("registered", f"models:/{version['name']}/{version['version']}{aliases}"))
    return rows


def print_shown(shown: Shown, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps(shown.as_dict(), indent=2, default=str))
        return
    for label, value in lines(shown):
        print(f"{label:<13}{value}")
