"""List every problem of a command line when Hydra's composition stops at the first one.

Hydra stops composing at its first wrong type, bad choice or unknown key, so
``data.batch_size=abc model.lr=-1 trainer.max_epochs=0`` reported only ``data.batch_size``,
though the README promises every problem in one pass. When composition fails on an
override's value or key, :func:`composition_problems` composes again without that
override (and again, for the next one), then validates what composed, with the keys whose
overrides were dropped counted as refused so no check reports a consequence of dropping
them (``trainer.min_epochs`` against a ``max_epochs`` that fell back to its default).

Only the kinds of error that belong to one override are collected this way: a value Hydra
cannot merge and a key the config does not have. A missing group option, a grammar error,
a multirun: the one sentence, as before.
"""

from __future__ import annotations

import re
from typing import Any, Optional

# Compositions after the first before giving up (each ~0.1 s): more bad overrides than this
# are listed up to here.
MAX_RETRIES = 16

_MERGING = re.compile(r"Error merging override (?P<line>.+)")
_COULD_NOT_OVERRIDE = re.compile(r"Could not override '(?P<key>[^']+)'")


def _key_of(line: str) -> str:
    return line.partition("=")[0].lstrip("+~").strip()


def _offending(exc: BaseException, remaining: list[str]) -> Optional[str]:
    """The override line that ``exc`` (a Hydra composition error) is about, if one of ``remaining``."""
    from hydra.errors import ConfigCompositionException

    if not isinstance(exc, ConfigCompositionException):
        return None
    message = str(exc)
    found = _MERGING.search(message)
    if found is not None:
        line = found.group("line").strip()
        return line if line in remaining else None
    found = _COULD_NOT_OVERRIDE.search(message)
    if found is not None:
        key = found.group("key")
        matches = [line for line in remaining if _key_of(line) == key]
        return matches[0] if len(matches) == 1 else None
    return None


def _overrides(argv: list[str]) -> Optional[list[str]]:
    """The override lines of a single run's command line (None for a multirun or an unknown form)."""
    try:  # Hydra's own command-line parser, private (docs/internals.md)
        from hydra._internal.utils import get_args_parser

        args, _ = get_args_parser().parse_known_args(argv)
    except BaseException:  # argparse exits on some forms; Hydra reports those itself
        return None
    if args.multirun or args.cfg or args.info or args.shell_completion:
        return None
    return list(args.overrides)


def composition_problems(argv: list[str], config_name: str, exc: BaseException) -> list[str]:
    """Every problem of the command line after the one ``exc`` (Hydra's composition error) reports."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from aegis.config.hydra_errors import sentence
    from aegis.config.validation import problems
    from aegis.errors import Problems

    overrides = _overrides(argv)
    if overrides is None or not GlobalHydra.instance().is_initialized():
        return []
    sentences, dropped = [], []
    remaining = list(overrides)
    try:
        loader = GlobalHydra.instance().config_loader()
        for _ in range(MAX_RETRIES):
            line = _offending(exc, remaining)
            if line is None:
                return sentences
            remaining.remove(line)
            dropped.append(_key_of(line))
            try:
                cfg = loader.load_configuration(config_name=config_name, overrides=remaining, run_mode=RunMode.RUN)
            except Exception as again:
                if "requires --multirun" in str(again):  # a search or sweep: Hydra's RUN mode cannot compose it
                    return sentences
                text = sentence(again)
                if text is None:
                    return sentences
                sentences.append(text)
                exc = again
                continue
            mode = OmegaConf.select(cfg, "hydra.mode")
            if getattr(mode, "name", mode) == "MULTIRUN":
                return sentences  # a config file turns multirun on (search=ray-tune): its own checks run there
            found = Problems()
            found.keys.update(dropped)  # refused already: their consequences are not problems
            HydraConfig.instance().set_config(cfg)
            problems(cfg, found)
            return sentences + [s for s in found.sentences if s not in sentences]
    except Exception:  # collecting more is a courtesy: the first sentence stands on its own
        return sentences
    return sentences
