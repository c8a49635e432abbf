"""Validate a composed config before anything is created or submitted.

Hydra already rejects unknown keys and wrong types while composing (the schemas are
closed). This pass adds what types cannot say: ranges and choices carried by schema
fields (``aegis.config.checks``), finite numbers everywhere, names the filesystem and
MLflow accept, and rules that span groups or need this machine's facts (a GPU, a
checkpoint file). Every failure is one sentence naming the full key and what would be
valid. The pass collects: each check adds its sentences to a ``Problems`` list and the
pass goes on, skipping only checks of values already refused (one bad value is one
sentence, not a cascade of its consequences); ``validate`` then raises one
``ConfigErrors`` carrying every sentence. Nothing here imports torch, lightning or
mlflow: it runs on the launch path, before Hydra creates a run dir.

This module is only the order of the pass. The rules live by area in
``aegis.config.rules`` (values, fields, components, callbacks, data, model, trainer,
this machine, tracking); where a run goes in ``aegis.config.where``; a sweep's jobs in
``aegis.config.sweep``; the Hydra callback that runs it all in ``aegis.config.on_start``.
"""

from __future__ import annotations

from typing import Optional

from omegaconf import DictConfig

from aegis import secrets
from aegis.config import bounds, rerun, run_dir, where
from aegis.config.faults import check as check_fault
from aegis.config.rules import callbacks, components, data, fields, finite, machine, model, trainer, tracking
from aegis.data.checks import check as check_data_source
from aegis.errors import Problems


def problems(cfg: DictConfig, found: Optional[Problems] = None) -> Problems:
    """Every problem of a composed config, one sentence each, in one pass (added to ``found``).

    Each check adds what it finds and the pass goes on; a check of a value another check
    already refused is skipped, so the list holds root causes, not their consequences.
    """
    found = Problems() if found is None else found
    hydra = where.hydra_node(cfg)
    # first: a search decides where (and whether) the rest runs
    from aegis.core.registry import search_rules  # aegis.tune's, loaded by path: the search sits above config

    found.run(search_rules(), cfg, hydra, found)
    launcher = where.launcher(cfg)
    before = len(found)
    found.run(launcher.check_unresolved, cfg, found)  # before anything resolves the launcher's values
    # The keys it refused are never read below: resolving them could print this machine's environment.
    unresolved = len(found) > before
    found.run(secrets.check_env_reads, cfg, found)  # ${oc.env:<a credential>}: refused unread, like those
    for check in (finite.check, fields.check, bounds.check, components.check, data.check, model.check,
                  model.check_monitor, callbacks.check, trainer.check):
        found.run(check, cfg, found)
    found.run(tracking.check, cfg, found)
    found.run(run_dir.check, cfg, hydra, found)  # a folder of its own, not the current one
    found.run(rerun.check, cfg, hydra, found)  # a run_id holding a run of another config
    found.run(machine.check, cfg, found)
    found.run(check_data_source, cfg, found, where.trains_here(cfg))  # exists, parses, fits its kind: no network
    found.run(check_fault, cfg, found)  # fault.rank within the gang
    if not unresolved and not found.covers("launcher"):
        found.run(launcher.check, cfg, found)  # the launcher's own rules, from its folder
    found.run(secrets.check_values, cfg, found)  # last: the named checks above say it better for their keys
    return found


def validate(cfg: DictConfig) -> None:
    """Raise ``ConfigErrors`` (a ``ConfigError``) listing every problem of a composed config."""
    problems(cfg).raise_if_any()
