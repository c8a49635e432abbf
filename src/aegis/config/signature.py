"""Read a component's ``__init__`` parameters from its source, without importing it.

Validation runs on the launch path, which must not import torch or lightning, yet the
classes it would check (``model._target_``) import both. Parsing the class's source
with ``ast`` gives the parameter names at the cost of reading one file, so a misspelt
key is refused before a run dir exists or a job is submitted. When the source cannot
say (a C extension, ``**kwargs``, an ``__init__`` inherited from elsewhere), the check
is left to the import-time signature bind that runs before training.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from typing import Optional


# Keys ``hydra.utils.instantiate`` consumes itself; they are not arguments of the target.
HYDRA_KEYS = frozenset({"_target_", "_recursive_", "_convert_", "_partial_", "_args_"})


@dataclass(frozen=True)
class StaticSignature:
    parameters: tuple[str, ...]
    required: tuple[str, ...]


def _find_class(tree: ast.Module, name: str) -> Optional[ast.ClassDef]:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    return None


def _find_init(tree: ast.Module, class_name: str, depth: int = 0) -> Optional[ast.FunctionDef]:
    """The class's own ``__init__``, or the one it inherits from a base in the same module."""
    cls = _find_class(tree, class_name)
    if cls is None or depth > 8:
        return None
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == "__init__":
            return node
    if len(cls.bases) == 1 and isinstance(cls.bases[0], ast.Name):
        return _find_init(tree, cls.bases[0].id, depth + 1)
    return None


def static_signature(target: str) -> Optional[StaticSignature]:
    module_name, _, class_name = target.rpartition(".")
    if not module_name:
        return None
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    try:
        with open(spec.origin, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), filename=spec.origin)
    except (OSError, SyntaxError):
        return None
    init = _find_init(tree, class_name)
    if init is None or init.args.kwarg is not None or init.args.vararg is not None:
        return None
    args = init.args
    positional = [a.arg for a in args.posonlyargs + args.args][1:]  # drop self
    with_default = len(args.defaults)
    required = positional[: len(positional) - with_default] if with_default else positional
    keyword_only = [a.arg for a in args.kwonlyargs]
    required += [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is None]
    return StaticSignature(tuple(positional + keyword_only), tuple(required))
