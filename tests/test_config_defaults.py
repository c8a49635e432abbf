"""One source of defaults: the schema, the YAML option and the class never disagree.

The rule (``aegis.config.schema``'s docstring): every default lives in its schema. A YAML
option that extends a schema states only what differs from it, and only where the
schema serves other options too (``trainer=smoke`` beside ``trainer=default``): an
option with a schema of its own has nothing to differ from, so a value there is a second
copy. An Aegis class built from a schema either takes a parameter without a default or
has the schema's default, so ``DigitsDataModule()`` in a notebook behaves as
``data=digits`` does. Callback options have no schema: their YAML is their one source,
checked against the class's ``__init__``.

Everything is read statically (YAML files, the ConfigStore, class sources through
``aegis.config.signature``); one test cross-checks that reader with ``inspect``.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from enum import Enum
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
from omegaconf import DictConfig, ListConfig, OmegaConf

from aegis.cli import prepare
from aegis.config.signature import static_signature
from helpers import CONF

# A class's ``name`` parameter only lets ``instantiate`` pass the node whole; it names
# the config option and means nothing to the class.
CONFIG_ONLY = {"name"}
AEGIS = "aegis."


def _schema_nodes() -> dict[tuple[str, str], DictConfig]:
    """(group, schema name) -> the schema node Hydra merges YAML options onto."""
    from hydra.core.config_store import ConfigStore

    prepare()
    store = ConfigStore.instance()
    nodes: dict[tuple[str, str], DictConfig] = {}

    def walk(group: str) -> None:
        for entry in store.list(group or ""):
            path = f"{group}/{entry}" if group else entry
            if entry.endswith(".yaml"):
                nodes[(group, entry[: -len(".yaml")])] = store.load(path).node
            elif not entry.startswith("_"):
                walk(path)

    walk("")
    return nodes


def _schema_of(yaml_file: Path, conf: Path, schemas: dict) -> Optional[tuple[str, str]]:
    """(group, schema name) the option extends through its defaults list, if any."""
    group = "" if yaml_file.parent == conf else yaml_file.parent.relative_to(conf).as_posix()
    for entry in OmegaConf.load(yaml_file).get("defaults", []) or []:
        if isinstance(entry, str) and (group, entry) in schemas:
            return group, entry
    return None


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), node


def _plain(node: Any) -> Any:
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=False, enum_to_str=True)
    return node.value if isinstance(node, Enum) else node


def yaml_problems(conf: Path, schemas: dict[tuple[str, str], DictConfig]) -> list[str]:
    """Every value a YAML option states that repeats or contradicts its schema's default."""
    options = {path: _schema_of(path, conf, schemas) for path in sorted(conf.rglob("*.yaml"))}
    options = {path: schema for path, schema in options.items() if schema is not None}
    sharing = Counter(options.values())
    problems = []
    for path, schema in options.items():
        stated = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        stated.pop("defaults", None)
        defaults = dict(_leaves(_plain(schemas[schema])))
        where = path.relative_to(conf).as_posix()
        for key, value in _leaves(stated):
            if key not in defaults:
                continue  # not a schema key: Hydra refuses it while composing
            if value == defaults[key]:
                problems.append(f"{where}: {key}={value!r} repeats its schema's default: delete it from the YAML")
            elif sharing[schema] == 1:
                problems.append(
                    f"{where}: {key}={value!r} but its schema {schema[1]} says {defaults[key]!r}, and no other "
                    "option uses that schema: move the value into the schema"
                )
    return problems


def _has_interpolation(value: Any) -> bool:
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, list):
        return any(_has_interpolation(v) for v in value)
    return False


def class_problems(schemas: dict[tuple[str, str], DictConfig]) -> list[str]:
    """Every Aegis class whose ``__init__`` keys or defaults differ from its schema's."""
    problems = []
    for (group, name), node in schemas.items():
        target = node.get("_target_") if "_target_" in node and not OmegaConf.is_missing(node, "_target_") else None
        if not isinstance(target, str) or not target.startswith(AEGIS):
            continue  # Lightning's Trainer: Aegis passes every key, its defaults never apply
        signature = static_signature(target)
        assert signature is not None, f"{target}'s __init__ cannot be read from its source"
        fields = {f for f in node.keys() if f != "_target_"} - CONFIG_ONLY
        parameters = set(signature.parameters) - CONFIG_ONLY
        if fields != parameters:
            problems.append(
                f"{target} takes {sorted(parameters - fields)} that {name} lacks, and {name} has "
                f"{sorted(fields - parameters)} that it does not take"
            )
        plain = _plain(node)
        for key in sorted(fields & parameters):
            if key not in signature.defaults or OmegaConf.is_missing(node, key):
                continue
            schema_default = plain[key]
            if _has_interpolation(schema_default):
                continue  # derived from another key: the class's default stands for the same thing
            class_default = signature.defaults[key]
            if isinstance(class_default, tuple):
                class_default = list(class_default)
            if class_default != schema_default:
                problems.append(f"{target}({key}={class_default!r}) but {group}/{name} says {schema_default!r}")
    return problems


def test_no_yaml_option_repeats_or_contradicts_its_schema():
    schemas = _schema_nodes()
    assert ("model", "cnn_schema") in schemas and ("", "train_schema") in schemas
    assert yaml_problems(CONF, schemas) == []


def test_aegis_classes_take_their_schema_keys_with_the_schema_defaults():
    assert class_problems(_schema_nodes()) == []


def test_the_checks_catch_a_drifted_default(tmp_path):
    """The checks above can fail: a contradicting, a repeating and a class-side drift."""
    schemas = _schema_nodes()
    (tmp_path / "model").mkdir()
    (tmp_path / "trainer").mkdir()
    (tmp_path / "model" / "cnn.yaml").write_text("defaults:\n  - cnn_schema\n  - _self_\nlr: 1.0e-3\n")
    (tmp_path / "trainer" / "default.yaml").write_text("defaults:\n  - trainer_schema\n  - _self_\n")
    (tmp_path / "trainer" / "smoke.yaml").write_text(
        "defaults:\n  - trainer_schema\n  - _self_\nmax_epochs: 2\nlog_every_n_steps: 10\n"
    )
    problems = yaml_problems(tmp_path, schemas)
    assert len(problems) == 2, problems
    assert "model/cnn.yaml: lr=0.001 but its schema cnn_schema says 0.002" in problems[0]
    assert "trainer/smoke.yaml: log_every_n_steps=10 repeats" in problems[1]  # max_epochs differs: smoke's point

    drifted = {key: node.copy() for key, node in schemas.items() if key == ("model", "cnn_schema")}
    drifted[("model", "cnn_schema")].lr = 5e-3
    assert class_problems(drifted) == ["aegis.training.models.CNNClassifier(lr=0.002) but model/cnn_schema says 0.005"]


def test_the_static_reader_agrees_with_the_imported_classes():
    """``static_signature`` (used above and by validation) reads what Python would bind."""
    pytest.importorskip("lightning")
    import inspect

    from hydra.utils import get_object

    for (_, _), node in _schema_nodes().items():
        target = node.get("_target_") if "_target_" in node and not OmegaConf.is_missing(node, "_target_") else None
        if not isinstance(target, str) or not target.startswith(AEGIS):
            continue
        parameters = inspect.signature(get_object(target)).parameters
        static = static_signature(target)
        assert static is not None and list(static.parameters) == list(parameters)
        assert static.defaults == {k: p.default for k, p in parameters.items() if p.default is not p.empty}


def test_every_callbacks_option_names_a_real_class_and_its_arguments(compose):
    from aegis.config.validation import validate

    options = sorted(p.stem for p in (CONF / "callbacks").glob("*.yaml"))
    assert {"default", "early_stopping", "lr_monitor"} <= set(options)
    for option in options:
        cfg = compose(f"callbacks={option}", "logger=csv")
        validate(cfg)  # _target_ exists, every key is an argument of its __init__
        for name, node in (cfg.callbacks or {}).items():
            signature = static_signature(node._target_)
            assert signature is not None, f"conf/callbacks/{option}.yaml: {node._target_} cannot be read"
            assert option == "default" or name == option, "an option's node is named after its file"
    assert set(compose("callbacks=[early_stopping,lr_monitor]").callbacks) == {"early_stopping", "lr_monitor"}
