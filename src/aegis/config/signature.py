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
from typing import Any, Optional


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


def _parse_target(target: str) -> Optional[tuple[ast.Module, str]]:
    """The parsed source of the module that defines ``target`` (``pkg.mod.Class``), and the class name."""
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
            return ast.parse(handle.read(), filename=spec.origin), class_name
    except (OSError, SyntaxError):
        return None


def _defines(tree: ast.Module, name: str) -> bool:
    """The module binds ``name`` at top level: a class or function, an import, an assignment."""
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if any((alias.asname or alias.name.split(".")[0]) == name for alias in node.names):
                return True
            if any(alias.name == "*" for alias in node.names):
                return True  # a star import could bind it: cannot tell
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return True
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return True
        if isinstance(node, (ast.If, ast.Try)):
            return True  # conditional definitions: cannot tell statically
    return False


def target_problem(target: str) -> Optional[str]:
    """Why ``target`` (``pkg.module.Class``) cannot be imported, or None when it can (or
    when its source cannot say: a compiled module, a conditional definition)."""
    module_name, _, class_name = target.rpartition(".")
    if not module_name:
        return "is not a dotted import path"
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return f"names a module, {module_name}, that cannot be found"
    parsed = _parse_target(target)
    if parsed is not None and not _defines(parsed[0], class_name):
        return f"names {class_name}, which {module_name} does not define"
    return None


def _find_constant(tree: ast.Module, class_name: str, name: str, depth: int = 0) -> Optional[ast.expr]:
    """The value expression of ``name = ...`` in the class body, or in a base in the same module."""
    cls = _find_class(tree, class_name)
    if cls is None or depth > 8:
        return None
    for node in cls.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return node.value
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return node.value
    for base in cls.bases:
        if isinstance(base, ast.Name):
            found = _find_constant(tree, base.id, name, depth + 1)
            if found is not None:
                return found
    return None


def static_class_constant(target: str, name: str) -> Any:
    """A literal class attribute of ``target`` (e.g. ``LOGGED_METRICS``), read from source.

    None when the class or the attribute cannot be found or is not a literal: the caller
    then skips whatever check needed it, as for a user's class that declares nothing.
    """
    parsed = _parse_target(target)
    if parsed is None:
        return None
    value = _find_constant(*parsed, name)
    if value is None:
        return None
    try:
        return ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError):
        return None


def static_signature(target: str) -> Optional[StaticSignature]:
    parsed = _parse_target(target)
    if parsed is None:
        return None
    tree, class_name = parsed
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
