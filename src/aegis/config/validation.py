"""Validate a composed config before anything is created or submitted.

Hydra already rejects unknown keys and wrong types while composing (the schemas are
closed). This module adds what types cannot say: ranges and choices carried by schema
fields (``aegis.config.checks``), finite numbers everywhere, names the filesystem and
MLflow accept, and rules that span groups or need this machine's facts (a GPU, a
checkpoint file). Every failure is one sentence naming the full key and what would be
valid. The pass collects: each check adds its sentences to a ``Problems`` list and the
pass goes on, skipping only checks of values already refused (one bad value is one
sentence, not a cascade of its consequences); ``validate`` then raises one
``ConfigErrors`` carrying every sentence. Nothing here imports torch, lightning or
mlflow: it runs on the launch path, before Hydra creates a run dir.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import sys
from typing import Any, Iterator, Optional

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from aegis import secrets
from aegis.config import annotations, bounds, host, names, rerun, run_dir, targets
from aegis.config.checks import Check, is_non_finite
from aegis.config.metrics import not_logged
from aegis.config.faults import check as check_fault
from aegis.config.schema import TrainConfig
from aegis.data.checks import check as check_data_source
from aegis.config.signature import HYDRA_KEYS, static_signature
from aegis.config.signature import target_problem as static_target_problem
from aegis.errors import ConfigError, Problems, error_lines
from aegis.redact import mask_credentials, mask_url_credentials, url_has_credentials
from aegis.tune.checks import check_search

RESUME_KEYWORDS = ("auto", "never")
# Launchers whose training runs on this machine, in this process or its children.
# Hydra's own launcher: jobs run here. Others (submitit, ray) run them elsewhere.
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
# Data whose size is known before loading it: _target_ -> (samples, values per sample, classes).
# Synthetic data states its own size in its keys.
KNOWN_DATA = {"aegis.training.data.DigitsDataModule": (1797, 64, 10)}
SYNTHETIC_DATA = "aegis.training.data.SyntheticDataModule"


def _get(node: DictConfig, name: str, key: str) -> Any:
    try:
        return node[name]
    except MissingMandatoryValue:
        raise ConfigError(f"{key} has no value ('???'): expected {key}=<value>.", key) from None
    except OmegaConfBaseException as exc:
        reason = str(exc).splitlines()[0].rstrip(".")
        raise ConfigError(f"{key} could not be resolved: {reason}.", key) from None


def _plain(value: Any) -> Any:
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    if hasattr(value, "value") and hasattr(value, "name"):  # an Enum member
        return value.value
    return value


def _shown(value: Any) -> str:
    """A value as the user would type it, on one line (strings quoted, so '' shows)."""
    plain = _plain(value)
    if isinstance(plain, list):
        return "[" + ",".join(str(x) for x in plain) + "]"
    return repr(plain) if isinstance(plain, str) else str(plain)


def _field_check(schema: type, name: str) -> Optional[Check]:
    """The check on ``schema.name``, inherited from a base when a subclass redefines the field.

    A dataclass field redefined in a subclass (``num_classes: int = 10``) replaces the
    base's field and its metadata, which silently dropped the base's range check.
    """
    for cls in schema.__mro__:
        found = getattr(cls, "__dataclass_fields__", {}).get(name)
        if found is not None and "check" in found.metadata:
            return found.metadata["check"]
    return None


def _finite_expectation(check: Optional[Check]) -> str:
    if check is not None and check.expected.startswith("a number"):
        return "a finite number" + check.expected[len("a number"):]
    return "a finite number"


# ------------------------------------------------------------------ every value


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
            value = _get(node, name, key)
        except ConfigError as exc:
            sources = _sources(_written(node, name))
            if sources:
                deferred.append((str(exc), key, sources))
            else:
                found.add(str(exc), key)
            continue
        if isinstance(value, DictConfig):
            yield from _leaves(value, f"{key}.", found, deferred)
        elif isinstance(value, ListConfig):
            yield from _leaves(value, key, found, deferred)
        else:
            yield key, value, schema, name


def _check_finite(cfg: DictConfig, found: Problems) -> None:
    """No ``inf``/``nan`` anywhere: they pass every comparison and train to NaN, "completed"."""
    deferred: list[tuple[str, str, list[str]]] = []
    for key, value, schema, name in _leaves(cfg, "", found, deferred, skip=("hydra",)):
        if is_non_finite(value):
            check = _field_check(schema, str(name)) if schema is not None else None
            found.add(f"{key}={value} is invalid: expected {_finite_expectation(check)}.", key)
    for sentence, key, sources in deferred:
        if not found.refused(*sources):
            found.add(sentence, key)


# ------------------------------------------------------------------ field checks


def _is_interpolation(node: DictConfig, name: str) -> bool:
    """The value of ``node.name`` (or an item of it) is derived from another key."""
    if OmegaConf.is_interpolation(node, name):
        return True
    if name not in node or OmegaConf.is_missing(node, name):
        return False
    child = node[name]
    if isinstance(child, ListConfig):
        return any(OmegaConf.is_interpolation(child, i) for i in range(len(child)))
    return False


# A plain reference to another key inside an interpolation: ${data.num_classes}, aegis-${task_name}.
_REFERENCE = re.compile(r"\$\{\s*([A-Za-z_][\w.]*)\s*\}")


def _written(node: Any, name: Any) -> Any:
    """The value of ``node[name]`` as written, interpolations unresolved."""
    return OmegaConf.to_container(node, resolve=False)[name]


def _sources(raw: Any) -> list[str]:
    """The keys a value (as written, unresolved) is interpolated from."""
    if isinstance(raw, list):
        return [key for item in raw for key in _sources(item)]
    return _REFERENCE.findall(raw) if isinstance(raw, str) else []


def _check_node(node: DictConfig, schema: type, prefix: str, found: Problems, derived: bool) -> None:
    """Field checks of ``node`` and its sub-nodes: the values the user wrote (``derived``
    false), or those interpolated from others (true). The pass checks every written value
    first, so a bad ``task_name`` or ``data.num_features`` is reported as itself and the
    ``aegis-${task_name}`` or ``[${data.num_features}]`` it feeds is then skipped."""
    subtrees = []
    if not derived and not prefix.startswith(ARGUMENT_NODES):
        _check_added_keys(node, schema, prefix, found)
    for f in dataclasses.fields(schema):
        if f.name not in node:
            continue
        key = f"{prefix}{f.name}"
        if found.covers(key):
            continue
        is_derived = _is_interpolation(node, f.name)
        if is_derived and found.refused(*_sources(_written(node, f.name))):
            continue  # follows a value already refused
        try:
            value = _get(node, f.name, key)
        except ConfigError as exc:
            found.add(str(exc), key)
            continue
        if isinstance(value, DictConfig):
            subtrees.append((value, f"{key}."))
            continue
        if is_derived != derived:
            continue
        check = _field_check(schema, f.name)
        if check is None or value is None:
            continue
        if not check(_plain(value)):
            found.add(f"{key}={_shown(value)} is invalid: expected {check.expected}.", key)
    for value, key in subtrees:
        _check_tree(value, key, found, derived)


# Nodes whose keys are their class's arguments, checked against its ``__init__`` instead
# (a model of one's own may take keys its schema does not list): _check_arguments.
ARGUMENT_NODES = ("data.", "model.")


def _check_added_keys(node: DictConfig, schema: type, prefix: str, found: Problems) -> None:
    """``+trainer.max_epoch=5``, ``+launcher.<key>=...``: ``+`` adds a key Hydra does not
    refuse (it opens the node), which nothing reads: refused like the same key without
    ``+``, with its "did you mean". Hydra's own node is Hydra's business."""
    from aegis.config.hydra_errors import _unknown_key

    known = {f.name for f in dataclasses.fields(schema)}
    for name in node.keys():
        if str(name) not in known and not (prefix == "" and name == "hydra"):
            key = f"{prefix}{name}"
            found.add(_unknown_key(key, schema), key)


def _check_tree(node: DictConfig, prefix: str, found: Problems, derived: bool) -> None:
    schema = OmegaConf.get_type(node)
    if schema is not None and dataclasses.is_dataclass(schema):
        _check_node(node, schema, prefix, found, derived)


def _check_fields(cfg: DictConfig, found: Problems) -> None:
    """Every field check: values as written, then values interpolated from them."""
    _check_node(cfg, TrainConfig, "", found, derived=False)
    _check_node(cfg, TrainConfig, "", found, derived=True)


def _check_component(node: DictConfig, key: str, example: str, cluster: bool, found: Problems) -> None:
    """The node's ``_target_`` exists and takes the node's keys (its ``__init__``, read from source).

    Under a cluster launcher the class is imported in the image, which may hold code this
    machine lacks, so only the keys of classes found here are checked there.
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
    for name in (p for p in signature.required if p not in given):
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
            value = _plain(node[name])
        except OmegaConfBaseException:
            continue  # unreadable: refused by the pass over every value
        if value is None and _is_interpolation(node, name):
            continue  # from the data, once it is cached
        if isinstance(value, dict) and "_target_" in value:
            continue  # Hydra builds it first: the annotation is of what it builds (checked as a target)
        values[str(name)] = value
    for name, annotation, expected in annotations.problems(target, values):
        found.add(f"{key}.{name}={_shown(values[name])} is invalid: expected {expected} ({target} takes "
                  f"{name}: {annotation}).", f"{key}.{name}")


def _check_arguments(cfg: DictConfig, found: Problems) -> None:
    """``data``/``model``: the class exists and takes these keys."""
    cluster = not _launcher(cfg).trains_here
    _check_component(cfg.data, "data", "aegis.training.data.DigitsDataModule", cluster, found)
    _check_component(cfg.model, "model", "aegis.training.models.MLPClassifier", cluster, found)
    trainer = cfg.trainer.get("_target_")
    problem = targets.problem(trainer, "trainer") if isinstance(trainer, str) else None
    if problem and not found.covers("trainer._target_"):
        found.add(f"trainer._target_={trainer} {problem}: expected lightning.pytorch.Trainer.", "trainer._target_")


# ------------------------------------------------------------------ callbacks

CALLBACK_EXAMPLE = "lightning.pytorch.callbacks.EarlyStopping"
# Lightning callbacks that raise at fit start when the trainer has no logger.
NEEDS_LOGGER = ("LearningRateMonitor", "DeviceStatsMonitor")


def _lightning_class(target: Any) -> Optional[str]:
    """The class name of a Lightning callback target (either package's spelling), else None."""
    if not isinstance(target, str) or not target.startswith(("lightning.pytorch.", "pytorch_lightning.")):
        return None
    return target.rpartition(".")[2]


def _duplicates_best_checkpoint(cfg: DictConfig, node: DictConfig) -> bool:
    """A user ModelCheckpoint with the built-in best checkpoint's identity (monitor, mode and
    schedule: Lightning's ``state_key``), which Lightning refuses when the trainer is built."""
    steps, epochs, interval = (node.get(k) for k in ("every_n_train_steps", "every_n_epochs", "train_time_interval"))
    schedule = (0, 1, None) if steps is None and epochs is None and interval is None else (steps or 0, epochs or 0, interval)
    mode = str(getattr(cfg.checkpoint.mode, "value", cfg.checkpoint.mode))
    return (schedule == (0, 1, None) and node.get("monitor") == cfg.checkpoint.monitor
            and str(_plain(node.get("mode", "min"))) == mode)


def _check_callbacks(cfg: DictConfig, found: Problems) -> None:
    """``callbacks``: each entry a ``_target_`` node that exists, takes its keys, watches a
    metric the model logs, and can run with this config (a logger, no clash with the
    built-in checkpoints). ``null`` entries are dropped options."""
    callbacks = cfg.get("callbacks")
    if not callbacks:
        return
    cluster = not _launcher(cfg).trains_here
    for name in callbacks.keys():
        key = f"callbacks.{name}"
        if found.covers(key):
            continue
        node = _get(callbacks, name, key)
        if node is None:
            continue
        if not isinstance(node, DictConfig) or not node.get("_target_"):
            shown = "" if isinstance(node, DictConfig) else f"={_shown(node)}"
            found.add(
                f"{key}{shown} has no _target_: expected callbacks={name} to add the option of that name "
                f"(conf/callbacks/{name}.yaml), or +{key}._target_=<import path of a Lightning callback> "
                f"such as {CALLBACK_EXAMPLE}.", key
            )
            continue
        _check_component(node, key, CALLBACK_EXAMPLE, cluster, found)
        monitor = node.get("monitor")
        if isinstance(monitor, str):
            _check_monitored(cfg, f"{key}.monitor", monitor, found)
        kind = _lightning_class(node._target_)
        if kind in NEEDS_LOGGER and cfg.logger.get("name") == "none":
            found.add(
                f"{key} ({kind}) logs to the run's logger but logger=none has none: expected logger=mlflow "
                f"or logger=csv, or {key}=null.", key
            )
        if kind == "ModelCheckpoint" and not found.refused("checkpoint") and _duplicates_best_checkpoint(cfg, node):
            found.add(
                f"{key} is a ModelCheckpoint of checkpoint.monitor={cfg.checkpoint.monitor} with the same mode and "
                "schedule as Aegis's best checkpoint, which Lightning refuses to run twice: expected "
                "checkpoint.save_top_k to keep more best checkpoints, or another monitor, mode or every_n_epochs.",
                key,
            )


# ------------------------------------------------------------------ data and model


def _data_size(data: DictConfig) -> Optional[tuple[int, int, int]]:
    """(samples, values per sample, classes) when the data says so before it is loaded."""
    target = data.get("_target_")
    if target in KNOWN_DATA:
        return KNOWN_DATA[target]
    if target == SYNTHETIC_DATA:
        sizes = tuple(data.get(key) for key in ("num_samples", "num_features", "num_classes"))
        return sizes if all(isinstance(size, int) for size in sizes) else None  # another option's keys
    return None


def _split_sizes(samples: int, val_fraction: float, test_fraction: float) -> dict[str, int]:
    """The split sizes of ``ArrayDataModule.setup``: two scikit-learn ``train_test_split``s,
    each putting ``ceil(fraction * n)`` samples in its test side."""
    test = math.ceil(test_fraction * samples)
    rest = samples - test
    val = math.ceil(val_fraction / (1.0 - test_fraction) * rest)
    return {"train": rest - val, "val": val, "test": test}


# What the size of the data depends on: a check of the sizes is skipped when one was refused.
DATA_SIZE_KEYS = ("data._target_", "data.num_samples", "data.num_features", "data.num_classes",
                  "data.val_fraction", "data.test_fraction")


def _check_data(cfg: DictConfig, found: Problems) -> None:
    data = cfg.data
    if found.refused("data.val_fraction", "data.test_fraction"):
        return
    val, test = data.get("val_fraction"), data.get("test_fraction")
    if isinstance(val, (int, float)) and isinstance(test, (int, float)) and val + test >= 1:
        found.add(
            f"data.val_fraction + data.test_fraction = {val + test:g} leaves no training data: "
            "their sum must be below 1.", "data.val_fraction", "data.test_fraction"
        )
        return
    if found.refused(*DATA_SIZE_KEYS):
        return
    size = _data_size(data)
    if size is None or not isinstance(val, (int, float)) or not isinstance(test, (int, float)):
        return
    samples, values, classes = size
    name = data.get("name")
    if data.get("num_classes") != classes:
        found.add(
            f"data.num_classes={data.num_classes} does not match data={name}, which has {classes} classes: "
            f"expected data.num_classes={classes}.", "data.num_classes"
        )
    shape = list(data.get("input_shape") or [])
    if shape and not found.refused("data.input_shape") and math.prod(shape) != values:
        found.add(
            f"data.input_shape={_shown(shape)} holds {math.prod(shape)} values but each data={name} sample has "
            f"{values}: expected a shape whose product is {values}.", "data.input_shape"
        )
    fractions = {"train": f"data.val_fraction={val} with data.test_fraction={test}",
                 "val": f"data.val_fraction={val}", "test": f"data.test_fraction={test}"}
    for split, count in _split_sizes(samples, val, test).items():
        if count < classes:
            found.add(
                f"{fractions[split]} leaves the {split} split of data={name} ({samples} samples) {count} samples, "
                f"fewer than its {classes} classes, which the stratified split needs: expected a split of at least "
                f"{classes} samples (more data.num_samples or a different fraction).",
                "data.val_fraction" if split == "val" else "data.test_fraction" if split == "test" else None,
            )
            return  # one split too small is one sentence; the others follow from the same sizes


def _check_model_matches_data(cfg: DictConfig, found: Problems) -> None:
    data, model = cfg.data, cfg.model
    for key in ("input_shape", "num_classes"):
        if key in model and key in data and not found.refused(f"model.{key}", f"data.{key}"):
            given, expected = _plain(model[key]), _plain(data[key])
            if given != expected:
                found.add(
                    f"model.{key}={_shown(given)} does not match data.{key}={_shown(expected)} of "
                    f"data={data.get('name')}: expected model.{key} to follow the data (leave it as "
                    f"${{data.{key}}}, the default).", f"model.{key}"
                )
    if found.refused("model.input_shape", "data.input_shape"):
        return
    if data.get("input_shape", "") is None:
        return  # from the data, once it is cached: checked when the run starts (aegis.training.datasets)
    if model.get("name") == "cnn" and len(model.get("input_shape") or []) != 3:
        found.add(
            f"model=cnn needs image data with data.input_shape [channels, height, width], "
            f"but data={data.get('name')} gives {list(model.input_shape)}: expected model=mlp, or image data "
            "such as data=digits.", "model.input_shape"
        )


def _check_monitor(cfg: DictConfig, found: Problems) -> None:
    if not found.refused("checkpoint.monitor"):
        _check_monitored(cfg, "checkpoint.monitor", cfg.checkpoint.monitor, found)


def _check_monitored(cfg: DictConfig, key: str, monitor: str, found: Problems) -> None:
    """``key`` (a checkpoint's or callback's ``monitor``) must be a metric the model logs while fitting.

    Aegis's models declare what they log (``LOGGED_METRICS``); a user's model that
    declares nothing is not checked. ``test/*`` metrics exist only after fitting.
    """
    sentence = not_logged(cfg.model, key, monitor)
    if sentence is not None:
        found.add(sentence, key)


# ------------------------------------------------------------------ trainer


def _batches(batches: int, limit: Any) -> int:
    """Batches per epoch in one process after Lightning's ``limit_*_batches`` (an upper
    bound under DDP, where each rank gets a share)."""
    if isinstance(limit, int) and not isinstance(limit, bool):
        return min(batches, limit)
    return int(batches * limit)


def _check_trainer(cfg: DictConfig, found: Problems) -> None:
    trainer = cfg.trainer
    if (trainer.get("min_epochs") is not None and not found.refused("trainer.min_epochs", "trainer.max_epochs")
            and trainer.min_epochs > trainer.max_epochs):
        found.add(
            f"trainer.min_epochs={trainer.min_epochs} exceeds trainer.max_epochs={trainer.max_epochs}: "
            "expected min_epochs <= max_epochs.", "trainer.min_epochs"
        )
    if found.refused(*DATA_SIZE_KEYS, "data.batch_size", "trainer.fast_dev_run", "trainer.overfit_batches"):
        return
    size = _data_size(cfg.data)
    if size is None or trainer.get("fast_dev_run") or trainer.get("overfit_batches"):
        return  # both replace the epoch's batches with their own
    splits = _split_sizes(size[0], cfg.data.val_fraction, cfg.data.test_fraction)
    full = {split: math.ceil(count / cfg.data.batch_size) for split, count in splits.items()}
    _check_limits(cfg, full, found)
    _check_val_check_interval(cfg, full["train"], found)


def _check_limits(cfg: DictConfig, full: dict[str, int], found: Problems) -> None:
    """A fraction of a split that rounds down to no batch: Lightning refuses it at fit time."""
    for split, batches in full.items():
        limit = cfg.trainer.get(f"limit_{split}_batches", 1.0)
        if found.refused(f"trainer.limit_{split}_batches"):
            continue
        if isinstance(limit, float) and 0 < limit < 1 and _batches(batches, limit) == 0:
            least = math.ceil(1000 / batches) / 1000
            found.add(
                f"trainer.limit_{split}_batches={limit} of the {batches} {split} batches of "
                f"data={cfg.data.get('name')} is less than one batch: expected at least {least:g}, a whole "
                "number of batches, or 0 to skip it.", f"trainer.limit_{split}_batches"
            )


def _check_val_check_interval(cfg: DictConfig, train_batches: int, found: Problems) -> None:
    """A whole number of batches between validations must fit in an epoch (Lightning's rule)."""
    trainer = cfg.trainer
    if found.refused("trainer.val_check_interval", "trainer.limit_train_batches", "trainer.limit_val_batches"):
        return
    interval = trainer.get("val_check_interval")
    if not isinstance(interval, int) or isinstance(interval, bool) or trainer.get("limit_val_batches") == 0:
        return
    batches = _batches(train_batches, trainer.get("limit_train_batches", 1.0))
    if interval > batches:
        found.add(
            f"trainer.val_check_interval={interval} exceeds the {batches} training batches per epoch of "
            f"data={cfg.data.get('name')}: expected at most {batches} batches, or a fraction of an epoch "
            "such as 0.5.", "trainer.val_check_interval"
        )


# ------------------------------------------------------------------ where it runs


def hydra_launcher_target(cfg: DictConfig) -> Optional[str]:
    """The ``_target_`` of the Hydra launcher that starts this run's jobs (submitit, ray, basic)."""
    if "hydra" in cfg:
        return cfg.hydra.launcher.get("_target_")
    if HydraConfig.initialized():
        return HydraConfig.get().launcher.get("_target_")
    return None


def _hydra_node(cfg: DictConfig) -> Optional[DictConfig]:
    """The ``hydra`` node of ``cfg``: its own, or Hydra's current one for a job's config."""
    if "hydra" in cfg:
        return cfg.hydra
    return HydraConfig.get() if HydraConfig.initialized() else None


def _trains_here(cfg: DictConfig) -> bool:
    """The run trains on this machine: a local launcher, started by Hydra's own launcher."""
    return _launcher(cfg).trains_here and hydra_launcher_target(cfg) in (None, BASIC_LAUNCHER)


def _check_accelerator(cfg: DictConfig, found: Problems) -> None:
    accelerator = cfg.trainer.accelerator
    if accelerator in ("gpu", "cuda"):
        gpus = host.gpu_count()
        if gpus == 0:
            found.add(
                f"trainer.accelerator={accelerator} needs a GPU but this machine has none visible (no "
                "/dev/nvidia*, or CUDA_VISIBLE_DEVICES hides them): expected trainer.accelerator=auto or cpu here, "
                "or a cluster launcher with launcher.resources.gpu."
            )
            return
        processes = cfg.launcher.get("nproc_per_node", 1)  # a launcher that starts one process per GPU here
        if processes > gpus:
            found.add(
                f"launcher.nproc_per_node={processes} starts one process per GPU but this machine has {gpus}: "
                f"expected launcher.nproc_per_node <= {gpus}."
            )
    if accelerator == "mps" and not host.is_macos():
        found.add(
            f"trainer.accelerator=mps needs Apple silicon (macOS) but this is {sys.platform}: "
            "expected auto, cpu, or gpu on a machine with one."
        )
    if accelerator == "tpu" and not host.has_torch_xla():
        found.add(
            "trainer.accelerator=tpu needs torch_xla, which is not installed here: expected auto, cpu or gpu."
        )


def _check_resume(cfg: DictConfig, found: Problems) -> None:
    resume = cfg.resume
    if resume in RESUME_KEYWORDS:
        return
    problem = host.checkpoint_problem(resume)
    if problem:
        found.add(
            f"resume={resume} {problem}: expected 'auto' (continue from last.ckpt in the run dir), "
            "'never', or the path of an existing checkpoint (.ckpt) file."
        )


def _check_paths_root(cfg: DictConfig, found: Problems) -> None:
    root = cfg.paths.root
    blocker = host.blocking_file(root)
    if blocker is not None:
        where = "" if os.path.abspath(root) == blocker else f" ({blocker} is a file)"
        found.add(
            f"paths.root={root} cannot hold run dirs{where}: expected a directory, or a path that can be created."
        )
    elif (why := host.unwritable_root(root)) is not None:
        found.add(f"paths.root={root} {why}: expected a directory this user can create run dirs in.", "paths.root")


def _check_host(cfg: DictConfig, found: Problems) -> None:
    """What only this machine can answer, for runs that train on it."""
    if not _trains_here(cfg):
        return
    if not found.refused("trainer.accelerator", "launcher.nproc_per_node"):
        _check_accelerator(cfg, found)
    if not found.refused("resume"):
        _check_resume(cfg, found)
    if not found.refused("paths.root"):
        _check_paths_root(cfg, found)


# ------------------------------------------------------------------ tracking


def _check_tracking(cfg: DictConfig, found: Problems) -> None:
    logger = cfg.logger
    if logger.get("name") != "mlflow":
        return
    uri = logger.get("tracking_uri")
    if uri is not None and not found.refused("logger.tracking_uri"):
        if url_has_credentials(uri):
            found.add(_tracking_credentials(cfg, uri), "logger.tracking_uri")
        elif problem := names.tracking_uri_problem(uri):
            found.add(
                f"logger.tracking_uri={uri} is not a tracking URI MLflow accepts ({problem}): expected "
                f"{names.TRACKING_URI_FORMS}."
            )
    if logger.get("registry_alias") and not logger.get("register_model") and not found.refused(
            "logger.registry_alias"):
        found.add(f"logger.registry_alias={logger.registry_alias} names an alias for the registered model version "
                  "but logger.register_model=false registers none: expected logger.register_model=true or "
                  "logger.registry_alias=null.", "logger.registry_alias")
    if logger.get("system_metrics") and _trains_here(cfg) and not host.has_module("psutil"):
        found.add("logger.system_metrics=true needs psutil (MLflow's system metrics monitor reads CPU and memory "
                  "through it), which is not installed here: expected pip install 'aegis[metrics]' or "
                  "logger.system_metrics=false.", "logger.system_metrics")
    for tag in (logger.get("tags") or {}):
        if not names.is_tag_key(str(tag)):
            found.add(
                f"logger.tags key {str(tag)!r} is not a valid MLflow tag name: expected at most "
                f"{names.MAX_TAG_KEY} letters, digits, '_', '-', '.', ' ', ':' and '/', not a path such as '..'."
            )


def _tracking_credentials(cfg: DictConfig, uri: str) -> str:
    """The sentence refusing a tracking URI with a password in it: where the password would
    land, and where it goes instead (this process's environment; for pods, a Secret).

    Refused for every launcher: the URI is an override, so it would be written to .hydra/,
    config.yaml and MLflow params, and travel on torchrun children's and pods' command lines.
    $MLFLOW_TRACKING_URI with a password works for runs on this machine: it is masked
    wherever Aegis writes or prints it."""
    from aegis.launch import LAUNCHERS

    shown = mask_url_credentials(uri)
    entry = LAUNCHERS.get(str(cfg.launcher.get("name")))
    if entry is not None and entry.kind is not None:  # a Kubernetes launcher: pods
        return (f"logger.tracking_uri={shown} carries credentials, which would be written in clear into the pods' "
                "command in the manifest (and .hydra/, config.yaml): expected the URI without them; pods get "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD from a Secret through "
                "+launcher.secret_env.MLFLOW_TRACKING_USERNAME=<secret name>/<key> and "
                "+launcher.secret_env.MLFLOW_TRACKING_PASSWORD=<secret name>/<key>.")
    return (f"logger.tracking_uri={shown} carries credentials, which would be written in clear to .hydra/, "
            "config.yaml and MLflow params: expected the URI without them, with MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD in the environment (or the whole URI in $MLFLOW_TRACKING_URI, which Aegis "
            "masks wherever it shows it).")


# The strategy's share of a gang's shape: a launcher's gang rules skip once one of these (or
# one of the launcher's own shape keys) was refused.
STRATEGY_SHAPE = ("strategy.devices", "strategy.num_nodes")


def problems(cfg: DictConfig, found: Optional[Problems] = None) -> Problems:
    """Every problem of a composed config, one sentence each, in one pass (added to ``found``).

    Each check adds what it finds and the pass goes on; a check of a value another check
    already refused is skipped, so the list holds root causes, not their consequences.
    """
    found = Problems() if found is None else found
    # first: a search decides where (and whether) the rest runs
    found.run(check_search, cfg, _hydra_node(cfg), found)
    launcher = _launcher(cfg)
    before = len(found)
    found.run(launcher.check_unresolved, cfg, found)  # before anything resolves the launcher's values
    # The keys it refused are never read below: resolving them could print this machine's environment.
    unresolved = len(found) > before
    found.run(secrets.check_env_reads, cfg, found)  # ${oc.env:<a credential>}: refused unread, like those
    for check in (_check_finite, _check_fields, bounds.check, _check_arguments, _check_data,
                  _check_model_matches_data, _check_monitor, _check_callbacks, _check_trainer):
        found.run(check, cfg, found)
    found.run(_check_tracking, cfg, found)
    found.run(run_dir.check, cfg, _hydra_node(cfg), found)  # a folder of its own, not the current one
    found.run(rerun.check, cfg, _hydra_node(cfg), found)  # a run_id holding a run of another config
    found.run(_check_host, cfg, found)
    found.run(check_data_source, cfg, found, _trains_here(cfg))  # exists, parses, fits its kind: no network
    found.run(check_fault, cfg, found)  # fault.rank within the gang
    if not unresolved and not found.covers("launcher"):
        found.run(launcher.check, cfg, found)  # the launcher's own rules, from its folder
    found.run(secrets.check_values, cfg, found)  # last: the named checks above say it better for their keys
    return found


class _UnknownLauncher:
    """A ``launcher.name`` no registered launcher has: one sentence, and no launcher rules."""

    trains_here = True

    def __init__(self, name: str) -> None:
        self.name = name

    def check_unresolved(self, cfg: DictConfig, found: Problems) -> None:
        from aegis.launch import LAUNCHERS

        found.add(f"launcher.name={self.name!r} is not a known launcher: expected one of "
                  f"{', '.join(sorted(LAUNCHERS))}.", "launcher.name")

    def check(self, cfg: DictConfig, found: Problems) -> None:
        pass


def _launcher(cfg: DictConfig) -> Any:
    """The launcher ``cfg`` names, through the registry (its module only: nothing trains here)."""
    from aegis.launch import LAUNCHERS, get_launcher

    name = cfg.launcher.name
    return get_launcher(name) if name in LAUNCHERS else _UnknownLauncher(name)


def validate(cfg: DictConfig) -> None:
    """Raise ``ConfigErrors`` (a ``ConfigError``) listing every problem of a composed config."""
    problems(cfg).raise_if_any()


BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
# Composing a job's config costs ~0.05 s: larger sweeps are checked job by job as they start.
MAX_SWEEP_JOBS_CHECKED = 64


def _sweep_jobs(config: DictConfig) -> Optional[list[list[str]]]:
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
    """Validate every job of a multirun before the sweep dir or any job exists.

    Hydra's callback sees only the base config; a bad value among the sweep's values
    (``model.lr=1e-3,inf``) would otherwise be found when its job starts, after the
    jobs before it ran. Each job is composed as the launcher will compose it.
    """
    jobs = _sweep_jobs(config)
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


class ValidateOnStart(Callback):
    """Hydra callback: validate before Hydra creates the run (or sweep) directory.

    Hydra turns exceptions raised in callbacks into warnings and carries on, so a
    failure here prints every problem, one ``Error:`` line each, and exits 1 itself.
    """

    def _validate(self, config: DictConfig, sweep: bool = False) -> None:
        HydraConfig.instance().set_config(config)  # lets ${hydra:...} resolve here
        try:
            found = problems(config)
            from aegis.launch.slurm.submitit import check as check_slurm  # hydra/launcher=submitit_slurm rules

            found.run(check_slurm, config)
            if not found:  # the config holds together: ask the backend whether it can ever run it
                found.run(_launcher(config).check_backend, config, found)
            if sweep and not found:  # each job would repeat the base config's problems
                found.run(validate_sweep, config)
            found.raise_if_any()
        except ConfigError as exc:
            for line in error_lines(exc):
                print(line, file=sys.stderr)
            sys.exit(1)
        except OmegaConfBaseException as exc:
            key = getattr(exc, "full_key", None)
            reason = str(exc).splitlines()[0].rstrip(".")
            print(f"Error: {key + ' ' if key else ''}could not be read from the config: {mask_credentials(reason)}.",
                  file=sys.stderr)
            sys.exit(1)
        except Exception:  # a bug in validation: Hydra would only warn and run anyway
            import traceback

            traceback.print_exc()
            sys.exit(1)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._validate(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._validate(config, sweep=True)
