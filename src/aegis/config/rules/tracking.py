"""``logger``: a logger given by class that would not build, and MLflow settings that MLflow
would refuse, or that would leak a password.

A Lightning logger by ``_target_`` is checked like a callback, from its class's source (no
import): a class that is not a Lightning logger, or a key its ``__init__`` does not take, is
one sentence before the run dir exists, not a traceback once training has started.

A tracking URI MLflow does not accept, a registry alias with nothing registered, system
metrics without psutil, a tag name MLflow refuses: each fails after the run started
(or loses its records). A URI carrying credentials is refused for every launcher,
because an override is written in clear to ``.hydra/``, config.yaml, MLflow params and
children's command lines.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from aegis.config import host, names, where
from aegis.config.rules.components import check_component
from aegis.core import logger_kind
from aegis.errors import Problems
from aegis.redact import mask_url_credentials, url_has_credentials


def check(cfg: DictConfig, found: Problems) -> None:
    """A logger given by class (``logger._target_``) against its class; the MLflow logger's
    URI, registry alias, system metrics and tags."""
    logger = cfg.logger
    kind = logger_kind.of(logger)
    if kind.target is not None and _is_aegis_option(logger):
        return  # +logger._target_ on logger=mlflow: the schema's check refused the key; its keys are not the class's
    if kind.target is not None and not found.covers("logger"):
        # As a callback: a class that exists, is a Lightning logger and takes the keys given.
        check_component(logger, "logger", logger_kind.EXAMPLE, not where.launcher(cfg).trains_here, found,
                        filled=logger_kind.RUN_DIR_ARGS)
    if not kind.mlflow:
        return
    uri = logger.get("tracking_uri")
    if uri is not None and not found.refused("logger.tracking_uri"):
        if url_has_credentials(uri):
            found.add(_tracking_credentials(cfg, uri), "logger.tracking_uri")
        elif problem := names.tracking_uri_problem(uri):
            found.add(
                f"logger.tracking_uri={uri} is not a tracking URI MLflow accepts ({problem}): expected "
                f"{names.TRACKING_URI_FORMS}."
            )
    if logger.get("registry_alias") and not logger.get("register_model") and not found.refused(
            "logger.registry_alias"):
        found.add(f"logger.registry_alias={logger.registry_alias} names an alias for the registered model version "
                  "but logger.register_model=false registers none: expected logger.register_model=true or "
                  "logger.registry_alias=null.", "logger.registry_alias")
    if logger.get("system_metrics") and where.trains_here(cfg) and not host.has_module("psutil"):
        found.add("logger.system_metrics=true needs psutil (MLflow's system metrics monitor reads CPU and memory "
                  "through it), which is not installed here: expected pip install 'aegis[metrics]' or "
                  "logger.system_metrics=false.", "logger.system_metrics")
    for tag in (logger.get("tags") or {}):
        if not names.is_tag_key(str(tag)):
            found.add(
                f"logger.tags key {str(tag)!r} is not a valid MLflow tag name: expected at most "
                f"{names.MAX_TAG_KEY} letters, digits, '_', '-', '.', ' ', ':' and '/', not a path such as '..'."
            )


def _is_aegis_option(logger: DictConfig) -> bool:
    """The node is one of Aegis's own logger options (typed by a schema in
    ``aegis.config.schema``), not a logger given by class: ``+logger._target_=...`` on
    ``logger=mlflow`` would otherwise be one refusal per MLflow key."""
    from aegis.config.schema import LoggerConfig

    kind = OmegaConf.get_type(logger)
    return isinstance(kind, type) and issubclass(kind, LoggerConfig)


def _tracking_credentials(cfg: DictConfig, uri: str) -> str:
    """The sentence refusing a tracking URI with a password in it: where the password would
    land, and where it goes instead (this process's environment; for pods, a Secret).

    Refused for every launcher: the URI is an override, so it would be written to .hydra/,
    config.yaml and MLflow params, and travel on torchrun children's and pods' command lines.
    $MLFLOW_TRACKING_URI with a password works for runs on this machine: it is masked
    wherever Aegis writes or prints it."""
    from aegis.core.registry import LAUNCHERS

    shown = mask_url_credentials(uri)
    entry = LAUNCHERS.get(str(cfg.launcher.get("name")))
    if entry is not None and entry.kind is not None:  # a Kubernetes launcher: pods
        return (f"logger.tracking_uri={shown} carries credentials, which would be written in clear into the pods' "
                "command in the manifest (and .hydra/, config.yaml): expected the URI without them; pods get "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD from a Secret through "
                "+launcher.secret_env.MLFLOW_TRACKING_USERNAME=<secret name>/<key> and "
                "+launcher.secret_env.MLFLOW_TRACKING_PASSWORD=<secret name>/<key>.")
    return (f"logger.tracking_uri={shown} carries credentials, which would be written in clear to .hydra/, "
            "config.yaml and MLflow params: expected the URI without them, with MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD in the environment (or the whole URI in $MLFLOW_TRACKING_URI, which Aegis "
            "masks wherever it shows it).")
