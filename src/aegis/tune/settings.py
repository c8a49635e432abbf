"""The sweeper's own keys (``hydra.sweeper.*``), checked before Ray starts.

Hydra's schema already rejects unknown keys and wrong types; these are the values a
type cannot rule out, each one sentence that names the key. They run in the validation
pass of the composed config (``aegis.tune.checks``), before the sweeper, Ray or the
sweep dir exist, and every bad value is listed at once.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from aegis.errors import Problems

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
    verbose: bool = False


def _fail(key: str, value: Any, expected: str) -> str:
    return f"hydra.sweeper.{key}={value!r} is invalid: expected {expected}."


def read(raw: Mapping[str, Any]) -> Settings:
    """The keys as they are (Hydra's schema has checked their types), defaults filled in."""
    scheduler = raw.get("scheduler") or {}
    resources = raw.get("resources") or {}
    return Settings(
        num_samples=raw["num_samples"], metric=raw["metric"], mode=raw["mode"],
        scheduler=scheduler.get("name", "fifo"), grace_period=scheduler.get("grace_period", 1),
        reduction_factor=scheduler.get("reduction_factor", 2.0), max_t=scheduler.get("max_t"),
        search_alg=raw["search_alg"], max_concurrent_trials=raw.get("max_concurrent_trials"),
        cpu=resources.get("cpu", 1.0), gpu=resources.get("gpu", 0.0), max_failures=raw["max_failures"],
        address=raw.get("address"), num_cpus=raw.get("num_cpus"), seed=raw.get("seed"),
        resume=bool(raw.get("resume")), plot=bool(raw.get("plot", True)),
        verbose=bool(raw.get("verbose", False)),
    )


def problems(s: Settings, found: Problems) -> None:
    """Add one sentence per bad value to ``found`` (every one, in one pass)."""
    def fail(key: str, value: Any, expected: str) -> None:
        found.add(_fail(key, value, expected), f"hydra.sweeper.{key}")

    if s.num_samples < 1:
        fail("num_samples", s.num_samples, "a number of trials >= 1")
    if not s.metric:
        fail("metric", s.metric, "a metric the training logs, such as 'val/acc' or 'val/loss'")
    if s.mode not in MODES:
        fail("mode", s.mode, "'max' (higher is better) or 'min'")
    if s.scheduler not in SCHEDULERS:
        fail("scheduler.name", s.scheduler, "one of " + ", ".join(SCHEDULERS))
    if s.grace_period < 1:
        fail("scheduler.grace_period", s.grace_period, "a number of epochs >= 1")
    if s.reduction_factor <= 1:
        fail("scheduler.reduction_factor", s.reduction_factor, "a number > 1")
    if s.max_t is not None and s.max_t < max(s.grace_period, 1):
        fail("scheduler.max_t", s.max_t, f"null or at least scheduler.grace_period ({s.grace_period})")
    if s.search_alg not in SEARCH_ALGS:
        fail("search_alg", s.search_alg, "one of " + ", ".join(SEARCH_ALGS))
    elif s.search_alg == "optuna" and importlib.util.find_spec("optuna") is None:
        found.add("hydra.sweeper.search_alg='optuna' needs the optuna package, which is not installed here: "
                  "expected pip install 'aegis[tune]' or hydra.sweeper.search_alg=random.", "hydra.sweeper.search_alg")
    if s.max_concurrent_trials is not None and s.max_concurrent_trials < 1:
        fail("max_concurrent_trials", s.max_concurrent_trials, "null (as many as fit) or >= 1")
    if s.cpu <= 0:
        fail("resources.cpu", s.cpu, "CPUs per trial > 0")
    if s.gpu < 0:
        fail("resources.gpu", s.gpu, "GPUs per trial >= 0 (one device per trial)")
    if s.max_failures < 0:
        fail("max_failures", s.max_failures, "a number of tolerated trial crashes >= 0")
    if s.address is not None and not (s.address == "auto" or s.address.startswith(("ray://", "local"))
                                      or ":" in s.address):
        fail("address", s.address, "null (a local Ray), 'auto', 'ray://<head>:10001' or '<head>:6379'")
    if s.num_cpus is not None and s.num_cpus < 1:
        fail("num_cpus", s.num_cpus, "null (all CPUs of this machine) or >= 1")


def check(raw: Mapping[str, Any]) -> Settings:
    """The settings, or ``ConfigErrors`` listing every bad value."""
    s = read(raw)
    found = Problems()
    problems(s, found)
    found.raise_if_any()
    return s
