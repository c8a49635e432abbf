"""The ``fault`` group: a run that fails on purpose, for drills of restarts and alerting.

A user who is about to start a long distributed run wants to know, before it matters,
that a rank dying is restarted, that the run resumes, and that the alert names the rank
and the cause. ``fault=raise|exit|kill|hang fault.rank=R fault.step=S`` makes rank R fail
that way once global step S is reached (``aegis.training.faults`` does it); ``fault=none``
(the default) adds nothing to the run.

This module holds the schemas (closed, so unknown keys are Hydra's errors) and the rule
that spans groups: the rank must exist in the gang the launcher starts. No torch import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import DictConfig

from aegis.config import checks as c
from aegis.config.checks import meta
from aegis.errors import Problems

KINDS = ("none", "raise", "exit", "kill", "hang")


def _kind(name: str) -> Any:
    """The kind an option is: set by choosing the option (``fault=hang``), not by this key."""
    return field(default=name, metadata=meta(c.Check(lambda v: v == name, f"{name!r}: the kind is the option, "
                                                     f"chosen with fault={'|'.join(KINDS)}")))


@dataclass
class FaultConfig:
    """No fault: the default."""

    kind: str = _kind("none")


@dataclass
class InjectedFaultConfig(FaultConfig):
    """Fail on global rank ``rank`` at the first training batch where the global step is
    ``step`` or more. ``once``: only in the first attempt of the run dir (a marker there
    says it fired), so a restarted gang resumes and finishes."""

    kind: str = _kind("raise")
    rank: int = field(default=0, metadata=meta(c.at_least(0)))
    step: int = field(default=0, metadata=meta(c.at_least(0)))
    once: bool = True


@dataclass
class RaiseFaultConfig(InjectedFaultConfig):
    """Raise ``aegis.training.faults.InjectedFault(message)``: an unexpected exception."""

    kind: str = _kind("raise")
    message: str = field(default="injected fault (fault=raise)", metadata=meta(c.non_empty()))


@dataclass
class ExitFaultConfig(InjectedFaultConfig):
    """Exit with ``exit_code`` (``sys.exit``), as a library that gives up would."""

    kind: str = _kind("exit")
    exit_code: int = field(default=3, metadata=meta(c.between(1, 255)))


@dataclass
class KillFaultConfig(InjectedFaultConfig):
    """SIGKILL itself: what the OOM killer or a lost node does, no record left."""

    kind: str = _kind("kill")


@dataclass
class HangFaultConfig(InjectedFaultConfig):
    """Stop responding (sleep forever, SIGTERM ignored): the other ranks' collective times
    out after ``strategy.timeout_s``."""

    kind: str = _kind("hang")


SCHEMAS: list[tuple[str, str, type]] = [
    ("fault", "none_schema", FaultConfig),
    ("fault", "raise_schema", RaiseFaultConfig),
    ("fault", "exit_schema", ExitFaultConfig),
    ("fault", "kill_schema", KillFaultConfig),
    ("fault", "hang_schema", HangFaultConfig),
]


def world_size(cfg: DictConfig) -> Optional[int]:
    """How many ranks the run will have, where the config (or torchrun's env) says so."""
    if "WORLD_SIZE" in os.environ and "TORCHELASTIC_RUN_ID" in os.environ:  # a rank of a running gang
        return int(os.environ["WORLD_SIZE"])
    if os.environ.get("SLURM_NTASKS", "").isdigit() and os.environ.get("SLURM_JOB_ID"):  # a task of a SLURM job
        return int(os.environ["SLURM_NTASKS"])
    from aegis.core.registry import LAUNCHERS, get_launcher

    name = cfg.launcher.get("name")
    return get_launcher(name).world_size(cfg) if name in LAUNCHERS else None


def check(cfg: DictConfig, found: Problems) -> None:
    """``fault.rank`` names a rank the run has."""
    fault: Any = cfg.get("fault")
    if fault is None or fault.get("kind") in (None, "none") or found.refused("fault.rank"):
        return
    size = world_size(cfg)
    if size is not None and fault.rank >= size:
        found.add(f"fault.rank={fault.rank} is beyond the run's {size} rank{'s' if size != 1 else ''}: expected "
                  f"0 <= fault.rank < {size} (the world size of launcher={cfg.launcher.get('name')}).", "fault.rank")
