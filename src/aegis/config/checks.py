"""Declarative value checks attached to schema fields.

OmegaConf checks types but not ranges; Hydra never calls ``__post_init__`` on
structured configs. So each schema field may carry a ``Check`` in its metadata and
``aegis.config.validation`` applies them to the composed config, where the message can
name the full key.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Check:
    """A predicate plus the words that tell the user what would be valid."""

    accepts: Callable[[Any], bool]
    expected: str

    def __call__(self, value: Any) -> bool:
        try:
            return bool(self.accepts(value))
        except TypeError:
            return False


def _is_number(value: Any) -> bool:
    """A real, finite number: ``inf`` and ``nan`` pass every comparison Lightning makes and
    then train to NaN, so no range check accepts them."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_non_finite(value: Any) -> bool:
    """True for a float ``inf``, ``-inf`` or ``nan`` (what YAML and Hydra parse from ``inf``/``nan``)."""
    return isinstance(value, float) and not math.isfinite(value)


def at_least(bound: float) -> Check:
    return Check(lambda v: _is_number(v) and v >= bound, f"a number >= {bound}")


def greater_than(bound: float) -> Check:
    return Check(lambda v: _is_number(v) and v > bound, f"a number > {bound}")


def between(low: int, high: int) -> Check:
    """A whole number in ``[low, high]`` (e.g. a NumPy/torch seed: 0 to 2**32 - 1)."""
    return Check(lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high,
                 f"a whole number from {low} to {high}")


def fraction(*, allow_zero: bool = True, allow_one: bool = False) -> Check:
    low = "0 <=" if allow_zero else "0 <"
    high = "<= 1" if allow_one else "< 1"

    def accepts(v: Any) -> bool:
        if not _is_number(v):
            return False
        return (v >= 0 if allow_zero else v > 0) and (v <= 1 if allow_one else v < 1)

    return Check(accepts, f"a fraction with {low} x {high}")


def port() -> Check:
    return Check(lambda v: isinstance(v, int) and 1 <= v <= 65535, "a TCP port from 1 to 65535")


def batch_limit() -> Check:
    """Lightning's ``limit_*_batches``/``overfit_batches``: a fraction in [0, 1] or a count."""

    def accepts(v: Any) -> bool:
        if isinstance(v, bool) or not _is_number(v):
            return False
        return v >= 0 if isinstance(v, int) else 0.0 <= v <= 1.0

    return Check(accepts, "a fraction from 0.0 to 1.0 or a whole number of batches >= 0")


def val_check_interval() -> Check:
    """Lightning's ``val_check_interval``: a fraction of an epoch in (0, 1], a whole number of
    batches >= 1, or a duration ``DD:HH:MM:SS``."""

    def accepts(v: Any) -> bool:
        if isinstance(v, str):
            return duration()(v)
        if isinstance(v, bool) or not _is_number(v):
            return False
        return v >= 1 if isinstance(v, int) else 0.0 < v <= 1.0

    return Check(accepts, "a fraction of an epoch with 0 < x <= 1.0, a whole number of batches >= 1, "
                          "or a duration DD:HH:MM:SS")


# Lightning's Timer parses exactly this (days of any width, then two digits each).
_DURATION = re.compile(r"(\d+):(\d\d):(\d\d):(\d\d)")


def duration() -> Check:
    """Lightning's ``max_time`` string: ``DD:HH:MM:SS``, longer than zero."""

    def accepts(v: Any) -> bool:
        match = _DURATION.fullmatch(v.strip()) if isinstance(v, str) else None
        return match is not None and any(int(part) for part in match.groups())

    return Check(accepts, "a duration DD:HH:MM:SS longer than zero, e.g. 00:12:00:00")


def fast_dev_run() -> Check:
    return Check(
        lambda v: isinstance(v, bool) or (isinstance(v, int) and v >= 0),
        "true, false or a whole number of batches >= 0",
    )


def non_empty_positive_ints() -> Check:
    return Check(
        lambda v: len(v) > 0 and all(isinstance(x, int) and x > 0 for x in v),
        "a non-empty list of integers > 0",
    )


def one_of(*choices: Any) -> Check:
    listed = ", ".join(repr(x) for x in choices)
    return Check(lambda v: v in choices, f"one of {listed}")


def non_empty() -> Check:
    return Check(lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string")


def path_component() -> Check:
    """``run_id``/``task_name``: one directory name under ``paths.root`` (see ``aegis.config.names``)."""
    from aegis.config import names

    return Check(names.is_path_component,
                 f"a single name of letters, digits, '.', '_' and '-' that does not start with '.' or '-', "
                 f"at most {names.MAX_PATH_COMPONENT} characters (it names a directory)")


def registered_model_name() -> Check:
    from aegis.config import names

    return Check(names.is_registered_model_name,
                 "a name MLflow's model registry accepts: not blank, without '/' or ':', not a path "
                 "such as '..' or one that starts with '/'")


def registry_alias() -> Check:
    from aegis.config import names

    return Check(names.is_model_alias,
                 "an MLflow model alias: at most 255 letters, digits, '_' and '-', not 'latest' and not "
                 "'v<number>' (reserved for versions), e.g. champion or staging")


def experiment_name() -> Check:
    from aegis.config import names

    return Check(names.is_experiment_name,
                 f"a non-empty MLflow experiment name of at most {names.MAX_EXPERIMENT_NAME} characters")


def deterministic() -> Check:
    """Lightning's ``deterministic``: a bool, or ``warn`` (deterministic ops, warn where none exist)."""
    return Check(lambda v: isinstance(v, bool) or v == "warn", "true, false or 'warn'")


# torch.distributed backends; "cpu:gloo,cuda:nccl" assigns one per device type.
PROCESS_GROUP_BACKENDS = ("gloo", "nccl", "mpi", "ucc", "xccl")


def process_group_backend() -> Check:
    def accepts(v: Any) -> bool:
        parts = [p.partition(":")[2] if ":" in p else p for p in str(v).split(",")]
        return isinstance(v, str) and all(p in PROCESS_GROUP_BACKENDS for p in parts)

    listed = ", ".join(PROCESS_GROUP_BACKENDS)
    return Check(accepts, f"null (gloo on CPU, nccl on GPU), one of {listed}, or e.g. 'cpu:gloo,cuda:nccl'")


def sha256_hex() -> Check:
    return Check(lambda v: isinstance(v, str) and re.fullmatch(r"[0-9a-fA-F]{64}", v.strip()) is not None,
                 "null or 64 hexadecimal digits (sha256sum FILE)")


# Where a dataset source may live (aegis.data.fetch): fsspec's local, HTTP and S3 filesystems.
DATA_SOURCE_SCHEMES = ("file", "http", "https", "s3")


def data_source() -> Check:
    def accepts(v: Any) -> bool:
        if not isinstance(v, str) or not v.strip():
            return False
        scheme = v.split("://", 1)[0].lower() if "://" in v else "file"
        return scheme in DATA_SOURCE_SCHEMES

    return Check(accepts, "a local path, or a file://, http(s):// or s3:// URI")


def mapping() -> Check:
    """null or a mapping of names to values (fsspec's ``storage_options``)."""
    return Check(lambda v: isinstance(v, dict), "null or a mapping such as {endpoint_url: https://minio.example.com}")


def meta(check: Check, help: str = "") -> dict[str, Any]:
    """Field metadata carrying a check (and optional help shown in error messages)."""
    return {"check": check, "help": help}
