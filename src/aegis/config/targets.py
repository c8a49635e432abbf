"""What a ``_target_`` names, read from source: a class of the right kind, or refused.

``hydra.utils.instantiate`` calls whatever ``_target_`` names: ``+callbacks.x._target_=
shutil.copyfile`` with ``src``/``dst`` copied a file before anything asked whether a
"callback" was a callback. Validation runs on the launch path and must not import the
classes (they import torch), so this reads their source, as ``aegis.config.signature``
does: a name defined by ``def`` is a function, not a class, and is refused; a class whose
bases can all be followed to their definitions and never reach the kind its group needs
(a Lightning ``Callback`` for ``callbacks``, a ``LightningModule`` for ``model`` ...) is
refused too. When the source cannot say (a compiled module, a star import, a base built
at run time), nothing is refused here: ``aegis.training.components.check_targets``
imports every target and checks it the same way before any is called.

Nested ``_target_`` nodes inside a component's arguments are instantiated by Hydra too,
so they must be classes as well.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
from typing import Any, Iterator, Optional

from omegaconf import DictConfig, ListConfig

from aegis.config import signature as sig

# group -> (class name, the packages that define it, how the sentence names it)
KINDS = {
    "callbacks": ("Callback", "a Lightning callback (a subclass of lightning.pytorch.Callback)"),
    "model": ("LightningModule", "a LightningModule"),
    "data": ("LightningDataModule", "a LightningDataModule"),
    "trainer": ("Trainer", "lightning.pytorch.Trainer or a subclass of it"),
    "logger": ("Logger", "a Lightning logger (a subclass of lightning.pytorch.loggers.Logger)"),
}
LIGHTNING = ("lightning.pytorch", "pytorch_lightning", "lightning")
OTHER_KINDS = frozenset(name for name, _ in KINDS.values())


def _def_kind(module_name: str, name: str, hops: int = 0) -> Optional[str]:
    """'class' or 'function' for what ``module_name`` binds ``name`` to, following
    ``from x import name`` re-exports; None when its source cannot say."""
    module = sig._parse_module(module_name)
    if module is None or hops > sig.MAX_HOPS:
        return None
    for node in module.tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return "class"
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return "function"
    source = sig._imported_from(module, name)
    if source is not None and source[0]:
        return _def_kind(source[0], source[1], hops + 1)
    return None


def _is_stdlib(module_name: str) -> bool:
    return module_name.partition(".")[0] in getattr(sys, "stdlib_module_names", ())


# Packages whose import costs seconds (torch, Lightning) or starts services: never imported to
# check a target (the training process imports and checks every target before building any).
HEAVY = frozenset({"torch", "lightning", "pytorch_lightning", "torchvision", "torchaudio", "torchmetrics",
                   "transformers", "ray", "mlflow", "tensorflow", "jax"})


def _imported_kind(module_name: str, name: str) -> Optional[str]:
    """'class' or 'function' (any other callable) for a name whose source does not show it:
    Python's standard library (``os.system`` comes from ``from posix import *``, ``builtins``
    is compiled) and light packages that define names at import time (``numpy.save`` is made
    by a decorator), by importing the module, which the run would import anyway. None for
    heavy packages, a module that does not import here, or a name it lacks."""
    if module_name.split(".")[0] in HEAVY:
        return None
    try:
        value = getattr(importlib.import_module(module_name), name)
    except Exception:
        return None
    return "class" if inspect.isclass(value) else "function" if callable(value) else None


def _module_alias(module: sig._Module, name: str) -> Optional[str]:
    """The module ``name`` is bound to by ``import a.b as name`` (or ``import name``)."""
    for node in module.tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname == name:
                    return alias.name
                if alias.asname is None and alias.name == name:
                    return alias.name
    return None


def _base_classes(module: sig._Module, cls: ast.ClassDef, hops: int) -> Optional[list[tuple[sig._Module, ast.ClassDef]]]:
    """Every base of ``cls`` located in source, or None when one of them cannot be."""
    found = []
    for base in cls.bases:
        located = None
        if isinstance(base, ast.Name):
            if base.id == "object":
                continue
            local = sig._find_class(module.tree, base.id)
            if local is not None:
                located = (module, local)
            else:
                source = sig._imported_from(module, base.id)
                located = sig._locate_class(source[0], source[1], hops + 1) if source and source[0] else None
        elif isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name):
            owner = _module_alias(module, base.value.id)
            located = sig._locate_class(owner, base.attr, hops + 1) if owner else None
        if located is None:
            return None
        found.append(located)
    return found


def _reaches(module: sig._Module, cls: ast.ClassDef, kind: str, hops: int = 0,
             home: tuple[str, ...] = LIGHTNING, kinds: frozenset = frozenset()) -> Optional[bool]:
    """True when ``cls`` is or derives from the class ``kind`` of the packages ``home``
    (Lightning's); False when every base was followed and none is; None when the source
    cannot say."""
    if module.name.startswith(home) and cls.name in (kinds or OTHER_KINDS | {kind}):
        return cls.name == kind  # Lightning's own: a LightningModule is never a callback
    if hops > 3 * sig.MAX_HOPS:
        return None
    bases = _base_classes(module, cls, hops)
    if bases is None:
        return None
    unknown = False
    for base in bases:
        answer = _reaches(*base, kind, hops + 1, home, kinds)
        if answer:
            return True
        unknown = unknown or answer is None
    return None if unknown else False


def problem(target: str, group: Optional[str]) -> Optional[str]:
    """Why ``target`` cannot be a component of ``group`` (None: it can, or source cannot say).

    ``group`` None: a nested ``_target_``, which must be a class of any kind."""
    module_name, _, name = target.rpartition(".")
    if not module_name:
        return None
    kind = _def_kind(module_name, name) or _imported_kind(module_name, name)
    if kind == "function":
        return "is a function, not a class"
    if kind != "class" or group not in KINDS:
        return None
    wanted, described = KINDS[group]
    if _is_stdlib(module_name):  # no Lightning class lives there
        return f"is a class but not {described}"
    located = sig._located(target)
    if located is None:
        return None
    if _reaches(*located, wanted) is False:
        return f"is a class but not {described}"
    return None


def _children(node: Any, key: str) -> Iterator[tuple[Any, str, Any]]:
    """(name or index, key, child node) of a mapping's values or a list's items, unresolved."""
    if isinstance(node, DictConfig):
        for name in node.keys():
            try:
                yield name, f"{key}.{name}", node._get_node(name)
            except Exception:
                continue
    elif isinstance(node, ListConfig):
        for index in range(len(node)):
            yield index, f"{key}[{index}]", node._get_node(index)


def nested(node: Any, key: str) -> Iterator[tuple[str, str]]:
    """(key of the node, its ``_target_``) of every ``_target_`` node below ``node``."""
    for _, child_key, child in _children(node, key):
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_missing():
            target = child.get("_target_") if "_target_" in child else None
            if isinstance(target, str):
                yield child_key, target
            yield from nested(child, child_key)
        elif isinstance(child, ListConfig):
            yield from nested(child, child_key)


# Hydra's own nodes that it instantiates itself, at start-up, before any Aegis check runs.
HYDRA_CALLBACK = "a Hydra callback (a subclass of hydra.experimental.callback.Callback)"


def _hydra_callback_problem(target: str) -> Optional[str]:
    found = problem(target, None)
    if found:
        return found
    module_name, _, name = target.rpartition(".")
    if module_name and _is_stdlib(module_name):
        return f"is a class but not {HYDRA_CALLBACK}"
    located = sig._located(target)
    if located is not None and _reaches(*located, "Callback", home=("hydra.",), kinds=frozenset({"Callback"})) is False:
        return f"is a class but not {HYDRA_CALLBACK}"
    return None


def _factories(node: Any, key: str) -> Iterator[tuple[str, str]]:
    """(key, value) of every ``()`` factory in a logging config (``logging.config.dictConfig`` calls it)."""
    if not isinstance(node, DictConfig):
        return
    for name, child_key, child in _children(node, key):
        if name == "()" and not isinstance(child, (DictConfig, ListConfig)):
            value = node.get(name)
            if isinstance(value, str):
                yield child_key, value
        elif isinstance(child, DictConfig):
            yield from _factories(child, child_key)


def hydra_problems(cfg: Any) -> list[str]:
    """Sentences for what Hydra itself would call from ``cfg.hydra``: each of
    ``hydra.callbacks`` must be a Hydra callback class, and the logging configs' ``()``
    factories classes (``+hydra.callbacks.x._target_=shutil.copyfile`` copied the file at
    start-up, before validation ran)."""
    hydra = cfg.get("hydra") if isinstance(cfg, DictConfig) else None
    if not isinstance(hydra, DictConfig):
        return []
    sentences = []
    callbacks = hydra.get("callbacks") or {}
    for name in callbacks.keys():
        node = callbacks.get(name)
        target = node.get("_target_") if isinstance(node, DictConfig) else None
        if not isinstance(target, str):
            continue
        why = _hydra_callback_problem(target)
        if why:
            sentences.append(f"hydra.callbacks.{name}._target_={target} {why}: expected the import path of one, "
                             "or hydra.callbacks.{name}=null to drop it.".replace("{name}", str(name)))
        for inner, inner_target in nested(node, f"hydra.callbacks.{name}"):
            why = problem(inner_target, None)
            if why:
                sentences.append(f"{inner}._target_={inner_target} {why}: expected the import path of a class.")
    for plugin in ("launcher", "sweeper"):  # instantiated by Hydra for a multirun
        node = hydra.get(plugin)
        target = node.get("_target_") if isinstance(node, DictConfig) else None
        why = problem(target, None) if isinstance(target, str) else None
        if why:
            sentences.append(f"hydra.{plugin}._target_={target} {why}: expected the import path of a Hydra "
                             f"{plugin} class (e.g. hydra/{plugin}=basic).")
    for group in ("job_logging", "hydra_logging"):
        for key, factory in _factories(hydra.get(group), f"hydra.{group}"):
            why = problem(factory, None)
            if why:
                sentences.append(f"{key}={factory} {why}: expected the import path of a logging class.")
    return sentences
