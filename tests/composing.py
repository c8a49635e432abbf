"""Compose as ``train.py`` composes, at a tenth of the cost, for the suite's ~1,000 composes.

A Hydra compose of conf/ takes ~0.2 s on this project's 2-core machine, most of it building
the defaults tree and merging the option files; the README suite composes about a thousand
times, nearly always the same few choices of config groups with different values.  So each
choice of groups (``launcher=torchrun``, ``data=synthetic``, ...) is composed once per test
process by Hydra itself, and the value overrides (``model.lr=inf``, ``+trainer.x=1``,
``~callbacks.early_stopping``) are applied to a copy by the same Hydra function that applies
them after a real composition (``ConfigLoaderImpl._apply_overrides_to_config``), with the
``hydra.overrides``/``override_dirname``/``runtime.cwd`` bookkeeping Hydra does after it.  Anything else
(a sweep, a package override, an override of Hydra's own node, a config group that does not
exist) goes to a full compose, so its error is Hydra's own.

tests/test_composing.py checks that both give the same config, node for node, over a table
of overrides of every kind, and docs/internals.md lists the private Hydra name used.
"""

from __future__ import annotations

import copy
import os
from functools import lru_cache
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, open_dict

CONF = Path(__file__).resolve().parents[1] / "conf"
CONFIG_NAME = "train"


def full(overrides: list[str], hydra_config: bool = True) -> DictConfig:
    """Hydra's own composition, start to end (in the caller's ``initialize_config_dir`` if any)."""
    if GlobalHydra.instance().is_initialized():
        return hydra_compose(CONFIG_NAME, overrides=list(overrides), return_hydra_config=hydra_config)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose(CONFIG_NAME, overrides=list(overrides), return_hydra_config=hydra_config)


def compose(overrides: list[str], hydra_config: bool = False) -> DictConfig:
    """What ``full(overrides, hydra_config)`` returns."""
    overrides = list(overrides)
    if os.environ.get("AEGIS_TEST_FULL_COMPOSE") == "1":
        return full(overrides, hydra_config)
    split = _split(tuple(overrides))
    if split is None:
        return full(overrides, hydra_config)
    groups, values, parsed = split
    cfg = copy.deepcopy(_groups_composed(groups))
    ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
    with open_dict(cfg.hydra):  # what Hydra sets after applying overrides, read now, not when cached
        cfg.hydra.overrides.task = [o.input_line for o in parsed]
        cfg.hydra.runtime.cwd = os.getcwd()
        for key in cfg.hydra.job.env_copy:
            cfg.hydra.job.env_set[key] = os.environ[key]
        cfg.hydra.job.override_dirname = get_overrides_dirname(
            overrides=parsed,
            kv_sep=cfg.hydra.job.config.override_dirname.kv_sep,
            item_sep=cfg.hydra.job.config.override_dirname.item_sep,
            exclude_keys=cfg.hydra.job.config.override_dirname.exclude_keys)
    if not hydra_config:
        with open_dict(cfg):
            del cfg["hydra"]
    return cfg


@lru_cache(maxsize=None)
def _groups_composed(groups: tuple[str, ...]) -> DictConfig:
    return full(list(groups), hydra_config=True)


def _split(overrides: tuple[str, ...]):
    """(group overrides, parsed value overrides, every override parsed), or None where only a
    full compose is right."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception:  # Hydra's own grammar error, from a full compose
        return None
    groups: list[str] = []
    values = []
    for override in parsed:
        key = override.key_or_group
        if override.is_sweep_override() or override.package is not None or key.split(".")[0].split("/")[0] == "hydra":
            return None
        if _is_group(key):
            if override.is_delete():
                return None
            groups.append(override.input_line)
        else:
            values.append(override)
    return tuple(groups), values, parsed


def _is_group(key: str) -> bool:
    """A config group as Hydra's repository finds one (``model``, ``a/b``): a folder of conf/
    or a group of Hydra's ConfigStore (where ``prepare()`` registers the schemas)."""
    if (CONF / key).is_dir():
        return True
    try:
        ConfigStore.instance().list(key)  # raises for a path that is missing or names a config
    except OSError:
        return False
    return True
