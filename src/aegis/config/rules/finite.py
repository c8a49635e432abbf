"""No ``inf``/``nan`` anywhere in the config, schema or not.

Non-finite numbers pass every comparison a range check makes, so a run with
``model.lr=inf`` trains to NaN and is recorded as completed. This rule walks every
leaf (Hydra's own node aside); a value that cannot be read is one sentence, and one
interpolated from a key already refused is not repeated.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Optional

from omegaconf import DictConfig, ListConfig, OmegaConf

from aegis.config.checks import Check, is_non_finite
from aegis.config.rules.values import field_check, read, sources, written
from aegis.errors import ConfigError, Problems


def _finite_expectation(check: Optional[Check]) -> str:
    if check is not None and check.expected.startswith("a number"):
        return "a finite number" + check.expected[len("a number"):]
    return "a finite number"


def _leaves(node: Any, prefix: str, found: Problems, deferred: list[tuple[str, str, list[str]]],
            skip: tuple[str, ...] = ()) -> Iterator[tuple[str, Any, Optional[type], Any]]:
    """(full key, resolved value, schema of the parent node, name in the parent) of every leaf.

    A value that cannot be read is added to ``found`` and skipped, as are refused keys; one
    interpolated from other keys is put in ``deferred`` with its sources instead, to be
    reported only if none of them was refused itself (``${data.x}`` of a ``???`` data.x)."""
    if isinstance(node, ListConfig):
        children: list[Any] = list(range(len(node)))
        schema = None
    else:
        children = [name for name in node.keys() if name not in skip]
        schema = OmegaConf.get_type(node)
        schema = schema if schema is not None and dataclasses.is_dataclass(schema) else None
    for name in children:
        key = f"{prefix}[{name}]" if isinstance(node, ListConfig) else f"{prefix}{name}"
        if found.covers(key):
            continue
        try:
            value = read(node, name, key)
        except ConfigError as exc:
            refs = sources(written(node, name))
            if refs:
                deferred.append((str(exc), key, refs))
            else:
                found.add(str(exc), key)
            continue
        if isinstance(value, DictConfig):
            yield from _leaves(value, f"{key}.", found, deferred)
        elif isinstance(value, ListConfig):
            yield from _leaves(value, key, found, deferred)
        else:
            yield key, value, schema, name


def check(cfg: DictConfig, found: Problems) -> None:
    """No ``inf``/``nan`` anywhere: they pass every comparison and train to NaN, "completed"."""
    deferred: list[tuple[str, str, list[str]]] = []
    for key, value, schema, name in _leaves(cfg, "", found, deferred, skip=("hydra",)):
        if is_non_finite(value):
            rule = field_check(schema, str(name)) if schema is not None else None
            found.add(f"{key}={value} is invalid: expected {_finite_expectation(rule)}.", key)
    for sentence, key, refs in deferred:
        if not found.refused(*refs):
            found.add(sentence, key)
