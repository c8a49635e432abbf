"""Every job of a basic-sweeper multirun, validated before the sweep dir or any job exists.

Hydra's callback sees only the base config; a bad value among the sweep's values
(``model.lr=1e-3,inf``) would otherwise be found when its job starts, after the jobs
before it ran. Each job is composed as the launcher will compose it and run through the
same pass (``aegis.config.validation``); a value shared by several jobs is one sentence.
"""

from __future__ import annotations

from typing import Optional

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from aegis.config.validation import problems
from aegis.errors import Problems

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
# Composing a job's config costs ~0.05 s: larger sweeps are checked job by job as they start.
MAX_SWEEP_JOBS_CHECKED = 64


def sweep_jobs(config: DictConfig) -> Optional[list[list[str]]]:
    """The override lists of every job Hydra's basic sweeper will launch, or None when it
    is another sweeper, the sweep is too large, or it has one job (the base config)."""
    if config.hydra.sweeper.get("_target_") != BASIC_SWEEPER:
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = config.hydra.sweeper.get("params") or {}
    lines = [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)
    parsed = OverridesParser.create().parse_overrides(lines)
    if not any(override.is_sweep_override() for override in parsed):
        return None
    try:  # private (docs/internals.md); without it each job is checked as it starts
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

        jobs = [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    except Exception:
        return None
    return jobs if 1 < len(jobs) <= MAX_SWEEP_JOBS_CHECKED else None


def validate_sweep(config: DictConfig) -> None:
    """Raise ``ConfigErrors`` listing the problems of every job of ``config``'s sweep, each job
    composed as the launcher will compose it (nothing when ``sweep_jobs`` gives no jobs)."""
    jobs = sweep_jobs(config)
    if not jobs:
        return
    from hydra.core.global_hydra import GlobalHydra

    from hydra.errors import HydraException

    from aegis.config.hydra_errors import sentence

    loader = GlobalHydra.instance().config_loader()
    found = Problems()  # a value shared by several jobs is one sentence, not one per job
    try:
        for overrides in jobs:
            try:
                job = loader.load_sweep_config(config, list(overrides))
            except (HydraException, OmegaConfBaseException) as exc:  # e.g. trainer.max_epochs=1,abc
                found.add(sentence(exc) or str(exc))
                continue
            HydraConfig.instance().set_config(job)
            job_found = problems(job)
            for line in job_found.sentences:
                found.add(line)
    finally:
        HydraConfig.instance().set_config(config)
    found.raise_if_any()
