"""The range and choice checks carried by schema fields, and keys no schema has.

Each schema field may carry a ``Check`` in its metadata (``aegis.config.checks``). The
pass checks every value the user wrote first, then those interpolated from them, so a
bad ``task_name`` is reported as itself and the ``aegis-${task_name}`` it feeds is
skipped. A key added with ``+`` that no schema reads is refused here, as Hydra refuses
the same key without ``+``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from aegis.config.checks import Check
from aegis.config.rules.values import field_check, is_interpolation, plain, read, shown, sources
from aegis.config.schema import TrainConfig
from aegis.errors import ConfigError, Problems

# Nodes whose keys are their class's arguments, checked against its ``__init__`` instead
# (a model of one's own may take keys its schema does not list): aegis.config.rules.components.
ARGUMENT_NODES = ("data.", "model.")


def _check_node(node: DictConfig, schema: type, prefix: str, found: Problems,
                derived: list[tuple[str, Any, Check, list[str]]]) -> None:
    """Field checks of the values the user wrote in ``node`` and its sub-nodes; each value
    interpolated from others goes to ``derived`` (key, value, check, sources) to be checked
    after every written value, so a bad ``task_name`` or ``data.num_features`` is reported
    as itself and the ``aegis-${task_name}`` or ``[${data.num_features}]`` it feeds is then
    skipped. One walk reads each value once: resolving an interpolation parses it again."""
    subtrees = []
    if not prefix.startswith(ARGUMENT_NODES):
        _check_added_keys(node, schema, prefix, found)
    raw: Optional[dict] = None  # the node as written, read only if an interpolation needs it
    for f in dataclasses.fields(schema):
        if f.name not in node:
            continue
        key = f"{prefix}{f.name}"
        if found.covers(key):
            continue
        refs: list[str] = []
        interpolated = is_interpolation(node, f.name)
        if interpolated:
            raw = OmegaConf.to_container(node, resolve=False) if raw is None else raw
            refs = sources(raw[f.name])  # type: ignore[index]
            if found.refused(*refs):
                continue  # follows a value already refused
        try:
            value = read(node, f.name, key)
        except ConfigError as exc:
            found.add(str(exc), key)
            continue
        if isinstance(value, DictConfig):
            subtrees.append((value, f"{key}."))
            continue
        check = field_check(schema, f.name)
        if check is None or value is None:
            continue
        if interpolated:
            derived.append((key, value, check, refs))
        elif not check(plain(value)):
            found.add(f"{key}={shown(value)} is invalid: expected {check.expected}.", key)
    for value, key in subtrees:
        _check_tree(value, key, found, derived)


def _check_added_keys(node: DictConfig, schema: type, prefix: str, found: Problems) -> None:
    """``+trainer.max_epoch=5``, ``+launcher.<key>=...``: ``+`` adds a key Hydra does not
    refuse (it opens the node), which nothing reads: refused like the same key without
    ``+``, with its "did you mean". Hydra's own node is Hydra's business."""
    from aegis.config.hydra_errors import unknown_key

    known = {f.name for f in dataclasses.fields(schema)}
    for name in node.keys():
        if str(name) not in known and not (prefix == "" and name == "hydra"):
            key = f"{prefix}{name}"
            found.add(unknown_key(key, schema), key)


def _check_tree(node: DictConfig, prefix: str, found: Problems,
                derived: list[tuple[str, Any, Check, list[str]]]) -> None:
    schema = OmegaConf.get_type(node)
    if schema is not None and dataclasses.is_dataclass(schema):
        _check_node(node, schema, prefix, found, derived)


def check(cfg: DictConfig, found: Problems) -> None:
    """Every field check: values as written, then values interpolated from them."""
    derived: list[tuple[str, Any, Check, list[str]]] = []
    _check_node(cfg, TrainConfig, "", found, derived)
    for key, value, check, refs in derived:
        if found.covers(key) or found.refused(*refs):
            continue  # follows a value refused after it was read
        if not check(plain(value)):
            found.add(f"{key}={shown(value)} is invalid: expected {check.expected}.", key)
