"""The sweeper's own keys (``hydra.sweeper.*``), checked before Ray starts.

Hydra's schema already rejects unknown keys and wrong types; these are the values a
type cannot rule out, each failing in one sentence that names the key.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from aegis.errors import ConfigError

SCHEDULERS = ("fifo", "asha")
SEARCH_ALGS = ("random", "optuna")
MODES = ("min", "max")


@dataclass(frozen=True)
class Settings:
    num_samples: int
    metric: str
    mode: str
    scheduler: str
    grace_period: int
    reduction_factor: float
    max_t: Optional[int]
    search_alg: str
    max_concurrent_trials: Optional[int]
    cpu: float
    gpu: float
    max_failures: int
    address: Optional[str]
    num_cpus: Optional[int]
    seed: Optional[int]
    resume: bool
    plot: bool


def _fail(key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"hydra.sweeper.{key}={value!r} is invalid: expected {expected}.")


def check(raw: Mapping[str, Any]) -> Settings:
    scheduler = raw.get("scheduler") or {}
    resources = raw.get("resources") or {}
    s = Settings(
        num_samples=raw["num_samples"], metric=raw["metric"], mode=raw["mode"],
        scheduler=scheduler.get("name", "fifo"), grace_period=scheduler.get("grace_period", 1),
        reduction_factor=scheduler.get("reduction_factor", 2.0), max_t=scheduler.get("max_t"),
        search_alg=raw["search_alg"], max_concurrent_trials=raw.get("max_concurrent_trials"),
        cpu=resources.get("cpu", 1.0), gpu=resources.get("gpu", 0.0), max_failures=raw["max_failures"],
        address=raw.get("address"), num_cpus=raw.get("num_cpus"), seed=raw.get("seed"),
        resume=bool(raw.get("resume")), plot=bool(raw.get("plot", True)),
    )
    if s.num_samples < 1:
        raise _fail("num_samples", s.num_samples, "a number of trials >= 1")
    if not s.metric:
        raise _fail("metric", s.metric, "a metric the training logs, such as 'val/acc' or 'val/loss'")
    if s.mode not in MODES:
        raise _fail("mode", s.mode, "'max' (higher is better) or 'min'")
    if s.scheduler not in SCHEDULERS:
        raise _fail("scheduler.name", s.scheduler, "one of " + ", ".join(SCHEDULERS))
    if s.grace_period < 1:
        raise _fail("scheduler.grace_period", s.grace_period, "a number of epochs >= 1")
    if s.reduction_factor <= 1:
        raise _fail("scheduler.reduction_factor", s.reduction_factor, "a number > 1")
    if s.max_t is not None and s.max_t < s.grace_period:
        raise _fail("scheduler.max_t", s.max_t, f"null or at least scheduler.grace_period ({s.grace_period})")
    if s.search_alg not in SEARCH_ALGS:
        raise _fail("search_alg", s.search_alg, "one of " + ", ".join(SEARCH_ALGS))
    if s.search_alg == "optuna" and importlib.util.find_spec("optuna") is None:
        raise _fail("search_alg", s.search_alg, "'random', or install optuna (pip install 'aegis[tune]')")
    if s.max_concurrent_trials is not None and s.max_concurrent_trials < 1:
        raise _fail("max_concurrent_trials", s.max_concurrent_trials, "null (as many as fit) or >= 1")
    if s.cpu <= 0:
        raise _fail("resources.cpu", s.cpu, "CPUs per trial > 0")
    if s.gpu < 0:
        raise _fail("resources.gpu", s.gpu, "GPUs per trial >= 0 (one device per trial)")
    if s.max_failures < 0:
        raise _fail("max_failures", s.max_failures, "a number of tolerated trial crashes >= 0")
    if s.address is not None and not (s.address == "auto" or s.address.startswith(("ray://", "local"))
                                      or ":" in s.address):
        raise _fail("address", s.address, "null (a local Ray), 'auto', 'ray://<head>:10001' or '<head>:6379'")
    if s.num_cpus is not None and s.num_cpus < 1:
        raise _fail("num_cpus", s.num_cpus, "null (all CPUs of this machine) or >= 1")
    return s
