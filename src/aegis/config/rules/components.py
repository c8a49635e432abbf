"""``data``, ``model`` and ``trainer``: a ``_target_`` that exists and takes the node's keys.

A model or data module of one's own has no schema to type its keys, so its class's
``__init__`` is read from source instead (no import, no torch): unknown keys, missing
required ones and values against their annotations are each one sentence before
Hydra instantiates anything. Callbacks are checked the same way (``callbacks``).
"""

from __future__ import annotations

import difflib
from typing import Any

from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from aegis.config import annotations, targets, where
from aegis.config.rules.values import is_interpolation, plain, shown
from aegis.config.signature import HYDRA_KEYS, static_signature
from aegis.config.signature import target_problem as static_target_problem
from aegis.errors import Problems


def check_component(node: DictConfig, key: str, example: str, cluster: bool, found: Problems,
                    filled: tuple[str, ...] = ()) -> None:
    """The node's ``_target_`` exists and takes the node's keys (its ``__init__``, read from source).

    Under a cluster launcher the class is imported in the image, which may hold code this
    machine lacks, so only the keys of classes found here are checked there. ``filled``:
    parameters Aegis sets when the config leaves them out (a logger's ``save_dir``).
    """
    target = node.get("_target_")
    problem = static_target_problem(target) if target and not cluster else None
    problem = problem or (targets.problem(target, key.partition(".")[0]) if isinstance(target, str) else None)
    if problem:
        found.add(f"{key}._target_={target} {problem}: expected the import path of a class, e.g. {example}.",
                  f"{key}._target_")
        return
    for inner, inner_target in targets.nested(node, key):  # Hydra instantiates these too
        inner_problem = targets.problem(inner_target, None)
        if inner_problem:
            found.add(f"{inner}._target_={inner_target} {inner_problem}: expected the import path of a class "
                      "(Hydra calls it to build the argument).", f"{inner}._target_")
    signature = static_signature(target) if target else None
    if signature is None:
        return
    given = [k for k in node.keys() if k not in HYDRA_KEYS]
    for name in (k for k in given if k not in signature.parameters):
        close = difflib.get_close_matches(str(name), signature.parameters, n=1)
        hint = f" (did you mean {key}.{close[0]}?)" if close else ""
        found.add(f"{key}.{name} is not an argument of {target}{hint}: it accepts {', '.join(signature.parameters)}.",
                  f"{key}.{name}")
    for name in (p for p in signature.required if p not in given and p not in filled):
        found.add(f"{key}.{name} is required by {target} but not set: expected +{key}.{name}=<value>.",
                  f"{key}.{name}")
    _check_annotated(node, key, target, [k for k in given if k in signature.parameters], found)


def _check_annotated(node: DictConfig, key: str, target: str, names: list[Any], found: Problems) -> None:
    """Each argument's value against its ``__init__`` annotation (a model of one's own has no
    schema to type it): ``model.width=abc`` for ``width: int`` is refused here, not by a
    traceback from inside the class."""
    values = {}
    for name in names:
        full = f"{key}.{name}"
        if found.covers(full):
            continue
        try:
            value = plain(node[name])
        except OmegaConfBaseException:
            continue  # unreadable: refused by the pass over every value
        if value is None and is_interpolation(node, name):
            continue  # from the data, once it is cached
        if isinstance(value, dict) and "_target_" in value:
            continue  # Hydra builds it first: the annotation is of what it builds (checked as a target)
        values[str(name)] = value
    for name, annotation, expected in annotations.problems(target, values):
        found.add(f"{key}.{name}={shown(values[name])} is invalid: expected {expected} ({target} takes "
                  f"{name}: {annotation}).", f"{key}.{name}")


def check(cfg: DictConfig, found: Problems) -> None:
    """``data``/``model``: the class exists and takes these keys."""
    cluster = not where.launcher(cfg).trains_here
    check_component(cfg.data, "data", "aegis.training.data.DigitsDataModule", cluster, found)
    check_component(cfg.model, "model", "aegis.training.models.MLPClassifier", cluster, found)
    trainer = cfg.trainer.get("_target_")
    problem = targets.problem(trainer, "trainer") if isinstance(trainer, str) else None
    if problem and not found.covers("trainer._target_"):
        found.add(f"trainer._target_={trainer} {problem}: expected lightning.pytorch.Trainer.", "trainer._target_")
