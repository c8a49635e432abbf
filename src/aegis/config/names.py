"""Names that become directories and MLflow entities, checked the way they will be used.

``run_id`` and ``task_name`` are path components of the run dir
(``<paths.root>/<task_name>/runs/<run_id>``) and MLflow names (the experiment is
``task_name``, the registered model ``aegis-<task_name>``), so a ``/`` or ``..`` in them
escapes ``paths.root`` and a ``:`` fails at registration, after all the training.

MLflow's rules (``mlflow/utils/validation.py`` and ``mlflow/utils/uri.py``, mlflow 3.17)
are mirrored rather than imported: importing ``mlflow.utils.validation`` costs ~1.8 s
here, and validation runs on the launch path, which must cost about an import of Hydra.
"""

from __future__ import annotations

import os
import posixpath
import re
from typing import Optional
from urllib.parse import urlparse

MAX_PATH_COMPONENT = 128
_PATH_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")

# mlflow.utils.validation.MAX_EXPERIMENT_NAME_LENGTH / MAX_ENTITY_KEY_LENGTH
MAX_EXPERIMENT_NAME = 500
MAX_TAG_KEY = 250
# mlflow.utils.validation.validate_param_and_metric_name (POSIX): also tag keys.
_TAG_KEY = re.compile(r"[/\w.\- :]*")
# mlflow.store.db.db_types.DATABASE_ENGINES
DATABASE_ENGINES = ("postgresql", "mysql", "sqlite", "mssql")
# Schemes mlflow.tracking._tracking_service.utils registers besides the databases.
_SERVER_SCHEMES = ("http", "https")
_DATABRICKS_SCHEMES = ("databricks", "databricks-uc", "uc")


def is_path_component(value: object) -> bool:
    """A single directory name that cannot climb out of its parent or hide: letters, digits,
    ``.``, ``_``, ``-``; not starting with ``.`` or ``-``; at most 128 characters."""
    return (isinstance(value, str) and len(value) <= MAX_PATH_COMPONENT
            and _PATH_COMPONENT.fullmatch(value) is not None)


def _path_not_unique(name: str) -> bool:
    """mlflow.utils.validation.path_not_unique: the name would resolve to another name as a path."""
    norm = posixpath.normpath(name)
    return norm != name or norm == "." or norm.startswith("..") or norm.startswith("/")


def is_registered_model_name(value: object) -> bool:
    """mlflow.utils.validation._validate_model_name: non-blank, no ``/`` or ``:``, path-unique."""
    if not isinstance(value, str) or value.strip() == "":
        return False
    return "/" not in value and ":" not in value and not _path_not_unique(value)


# mlflow.utils.validation: _REGISTERED_MODEL_ALIAS_REGEX, _REGISTERED_MODEL_ALIAS_VERSION_REGEX,
# MAX_REGISTERED_MODEL_ALIAS_LENGTH and the reserved "latest".
_MODEL_ALIAS = re.compile(r"[A-Za-z0-9_-]{1,255}")
_VERSION_ALIAS = re.compile(r"[vV]\d+")


def is_model_alias(value: object) -> bool:
    """An alias MLflow's registry accepts: letters, digits, ``_`` and ``-``; not ``latest``,
    not ``v<N>`` (both name versions already)."""
    return (isinstance(value, str) and _MODEL_ALIAS.fullmatch(value) is not None
            and value.lower() != "latest" and _VERSION_ALIAS.fullmatch(value) is None)


def is_experiment_name(value: object) -> bool:
    """mlflow.utils.validation._validate_experiment_name: non-empty, at most 500 characters."""
    return isinstance(value, str) and value != "" and len(value) <= MAX_EXPERIMENT_NAME


def is_tag_key(value: object) -> bool:
    """mlflow.utils.validation._validate_tag_name plus the key length limit."""
    return (isinstance(value, str) and len(value) <= MAX_TAG_KEY
            and _TAG_KEY.fullmatch(value) is not None and not _path_not_unique(value))


def _plugin_schemes() -> set[str]:
    """Schemes that installed MLflow tracking-store plugins register (read only when needed)."""
    from importlib.metadata import entry_points

    return {ep.name for ep in entry_points(group="mlflow.tracking_store")}


def tracking_uri_problem(uri: str) -> Optional[str]:
    """Why MLflow would not open ``uri`` as a tracking store, or None when it would."""
    try:
        parsed = urlparse(uri)
    except ValueError as exc:
        return f"it does not parse as a URI ({exc})"
    scheme = parsed.scheme.lower()
    if uri in _DATABRICKS_SCHEMES:  # "databricks": the default profile
        return None
    if scheme == "":
        return None if os.path.isabs(uri) else "it has no scheme and is not an absolute path"
    if scheme == "file":
        return None if parsed.path else "a file: URI needs a path"
    if scheme in _SERVER_SCHEMES:
        return None if parsed.hostname else f"an {scheme}:// URI needs a host"
    if scheme in _DATABRICKS_SCHEMES:
        return None
    engine, plus, driver = scheme.partition("+")
    if engine in DATABASE_ENGINES:
        if "+" in driver or (plus and not driver):
            return f"{scheme}:// is not <database>[+<driver>]"
        if engine == "sqlite":
            rest = uri.split(":", 1)[1]
            ok = rest.startswith("///") and len(rest) > 3
            return None if ok else "a SQLite URI is sqlite:///<path of the database file>"
        return None if parsed.hostname else f"a {engine} URI needs a host"
    if scheme in _plugin_schemes():
        return None
    return f"MLflow has no tracking store for the scheme {scheme!r}"


TRACKING_URI_FORMS = (
    "http(s)://<host>[:port], databricks, file:<path>, sqlite:///<path>, "
    "postgresql|mysql|mssql[+driver]://<host>/<db>, or an absolute local path"
)
