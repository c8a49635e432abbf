"""The config a launcher's processes compose: the user's overrides with the in-process launcher.

A launcher that starts processes re-entering ``train.py`` (torchrun's ranks, pods, srun
tasks) drops the user's ``launcher.*`` overrides and selects the in-process launcher
(``registry.IN_PROCESS``; :meth:`aegis.launch.base.RunContext.child_overrides`). A config
*file* that sets a launcher key (an experiment's ``launcher: {nproc_per_node: 2}``) is merged
again in every child, into the in-process launcher's config, which has no such key: each
child would stop after the launch. :func:`check_children_compose` composes the children's
config in the parent, before anything starts (about 0.05 s, no torch), and says so in one
sentence.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig

from aegis.core.registry import IN_PROCESS
from aegis.errors import Problems

_IN_CONFIG = re.compile(r"In '(?P<config>[^']+)'")
_FULL_KEY = re.compile(r"full_key: (?P<key>launcher\.\S+)")


def child_composition_error(cfg: DictConfig, **replace: str) -> Optional[Exception]:
    """The error composing ``cfg``'s children would raise (None when they compose, or when
    no Hydra is initialized here to compose with)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from hydra.types import RunMode
    from omegaconf.errors import OmegaConfBaseException

    from aegis.config.where import hydra_node
    from aegis.launch.base import RunContext

    hydra = hydra_node(cfg)
    if hydra is None or not GlobalHydra.instance().is_initialized():
        return None
    task = tuple(str(o) for o in hydra.overrides.task)
    if _sweeps(task):
        return None  # a sweep's base config: each job is checked with its own values when it is composed
    ctx = RunContext(run_dir=Path("."), run_id="child", config_name=str(hydra.job.config_name),
                     task_overrides=task)
    overrides = [str(o) for o in hydra.overrides.hydra] + ctx.child_overrides(**{"launcher": IN_PROCESS, **replace})
    try:
        GlobalHydra.instance().config_loader().load_configuration(
            config_name=ctx.config_name, overrides=overrides, run_mode=RunMode.RUN)
    except (HydraException, OmegaConfBaseException) as exc:
        return exc
    return None


def _sweeps(overrides: tuple[str, ...]) -> bool:
    """Some override sweeps (``model.lr=0.1,0.2``, ``range(...)``): no single child composes it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        return any(o.is_sweep_override() for o in OverridesParser.create().parse_overrides(list(overrides)))
    except HydraException:
        return False


def check_children_compose(cfg: DictConfig, found: Problems, processes: str = "processes") -> None:
    """One sentence when the ``processes`` this launcher starts (``"the ranks"``) cannot
    compose their config with the in-process launcher."""
    exc = child_composition_error(cfg)
    if exc is None:
        return
    text = str(exc)
    config, key = _IN_CONFIG.search(text), _FULL_KEY.search(text)
    if config and key:
        found.add(f"'{config['config']}' sets {key['key']}, which {processes} cannot read: they re-enter train.py "
                  f"with launcher={IN_PROCESS}, so set {key['key']} on the command line, or in a conf/launcher/ option "
                  "that the file selects.", key["key"])
        return
    from aegis.config.hydra_errors import sentence

    reason = (sentence(exc) or text.splitlines()[0]).rstrip(".")
    found.add(f"{processes[:1].upper()}{processes[1:]} cannot compose this config with launcher={IN_PROCESS}: {reason}.")
