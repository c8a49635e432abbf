"""Read a component's ``__init__`` parameters from its source, without importing it.

Validation runs on the launch path, which must not import torch or lightning, yet the
classes it would check (``model._target_``) import both. Parsing the class's source
with ``ast`` gives the parameter names at the cost of reading one file, so a misspelt
key is refused before a run dir exists or a job is submitted. Modules are found on disk
without importing them or their parent packages (``find_spec("lightning.pytorch.callbacks")``
would import lightning, and with it torch), a class re-exported by a package
(``lightning.pytorch.callbacks.EarlyStopping``) is followed to the module that defines it,
and so is an ``__init__`` inherited from a base imported from another module. When the
source cannot say (a C extension, ``**kwargs``, a conditional definition), the check is
left to the import-time signature bind that runs before training.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Optional


# Keys ``hydra.utils.instantiate`` consumes itself; they are not arguments of the target.
HYDRA_KEYS = frozenset({"_target_", "_recursive_", "_convert_", "_partial_", "_args_"})


# Imports and base classes followed before giving up (re-export chains are short).
MAX_HOPS = 8


@dataclass(frozen=True)
class StaticSignature:
    parameters: tuple[str, ...]
    required: tuple[str, ...]
    #: Parameters whose default is a literal (``0.1``, ``(256, 128)``, ``"adam"``, ``None``),
    #: by name; a computed default is left out.
    defaults: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class _Module:
    """A module's parsed source and its dotted name (to resolve relative imports)."""

    name: str
    tree: ast.Module
    is_package: bool


def _source_of(module_name: str) -> tuple[bool, Optional[str], bool]:
    """(found, path of its ``.py`` source or None, is a package), without importing it.

    Only the top-level package goes through the import system's finders (which run no
    module code); submodules are looked up in their parent's directories on disk. A
    parent that is already imported is asked directly, which also covers packages that
    extend their own ``__path__``.
    """
    parent, _, _ = module_name.rpartition(".")
    if not parent or parent in sys.modules:
        try:
            spec = importlib.util.find_spec(module_name)
        except (ImportError, ValueError, AttributeError):
            return False, None, False
        if spec is None:
            return False, None, False
        origin = spec.origin if spec.origin and spec.origin.endswith(".py") else None
        return True, origin, spec.submodule_search_locations is not None
    found, _, is_package = _source_of(parent)
    if not found or not is_package:
        return False, None, False
    for directory in _package_dirs(parent):
        leaf = module_name.rpartition(".")[2]
        package = os.path.join(directory, leaf)
        if os.path.isfile(os.path.join(package, "__init__.py")):
            return True, os.path.join(package, "__init__.py"), True
        if os.path.isfile(package + ".py"):
            return True, package + ".py", False
        if os.path.isdir(package):
            return True, None, True  # a namespace package
        if any(entry.startswith(leaf + ".") and entry.endswith((".so", ".pyd"))
               for entry in os.listdir(directory)):
            return True, None, False  # compiled: exists, but its source cannot say more
    return False, None, False


def _package_dirs(package: str) -> list[str]:
    """The directories a package's submodules live in, read without importing it."""
    if package in sys.modules:
        return list(getattr(sys.modules[package], "__path__", []) or [])
    parent, _, leaf = package.rpartition(".")
    if not parent:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError, AttributeError):
            return []
        return list(spec.submodule_search_locations or []) if spec else []
    dirs = []
    for directory in _package_dirs(parent):
        candidate = os.path.join(directory, leaf)
        if os.path.isdir(candidate):
            dirs.append(candidate)
    return dirs


def _parse_module(module_name: str) -> Optional[_Module]:
    found, origin, is_package = _source_of(module_name)
    if not found or origin is None:
        return None
    try:
        info = os.stat(origin)
        stamp = (info.st_mtime_ns, info.st_size)
    except OSError:
        return None
    return _parse_file(module_name, origin, is_package, stamp)


@functools.lru_cache(maxsize=256)  # one parse per file version per process: several checks read the same ones
def _parse_file(module_name: str, origin: str, is_package: bool, stamp: tuple[int, int]) -> Optional[_Module]:
    try:
        with open(origin, encoding="utf-8") as handle:
            return _Module(module_name, ast.parse(handle.read(), filename=origin), is_package)
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def _imported_from(module: _Module, name: str) -> Optional[tuple[str, str]]:
    """(absolute module, original name) when ``module`` binds ``name`` by ``from X import``."""
    for node in module.tree.body:
        if not isinstance(node, ast.ImportFrom):
            continue
        for alias in node.names:
            if (alias.asname or alias.name) != name or alias.name == "*":
                continue
            if node.level:
                base = module.name if module.is_package else module.name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            return source, alias.name
    return None


def _locate_class(module_name: str, class_name: str, hops: int = 0) -> Optional[tuple[_Module, ast.ClassDef]]:
    """The module that defines ``class_name`` as seen from ``module_name``, following re-exports."""
    module = _parse_module(module_name)
    if module is None or hops > MAX_HOPS:
        return None
    cls = _find_class(module.tree, class_name)
    if cls is not None:
        return module, cls
    source = _imported_from(module, class_name)
    if source is None or not source[0]:
        return None
    return _locate_class(source[0], source[1], hops + 1)


def _find_class(tree: ast.Module, name: str) -> Optional[ast.ClassDef]:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    return None


def _bases(module: _Module, cls: ast.ClassDef, hops: int) -> list[tuple[_Module, ast.ClassDef]]:
    """The bases of ``cls`` whose source can be found: in its module, or imported by name."""
    found = []
    for base in cls.bases:
        if not isinstance(base, ast.Name):
            continue  # ``L.LightningModule``, ``Generic[T]``: not followed
        local = _find_class(module.tree, base.id)
        if local is not None:
            found.append((module, local))
            continue
        source = _imported_from(module, base.id)
        located = _locate_class(source[0], source[1], hops + 1) if source and source[0] else None
        if located is not None:
            found.append(located)
    return found


def _find_init(module: _Module, cls: ast.ClassDef, hops: int = 0) -> Optional[ast.FunctionDef]:
    """The class's own ``__init__``, or the one it inherits from its only base."""
    if hops > MAX_HOPS:
        return None
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == "__init__":
            return node
    if len(cls.bases) != 1:
        return None  # several bases: which __init__ runs is the MRO's business
    bases = _bases(module, cls, hops)
    return _find_init(*bases[0], hops + 1) if bases else None


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
    found, _, _ = _source_of(module_name)
    if not found:
        return f"names a module, {module_name}, that cannot be found"
    module = _parse_module(module_name)
    if module is not None and not _defines(module.tree, class_name):
        return f"names {class_name}, which {module_name} does not define"
    return None


def _find_constant(module: _Module, cls: ast.ClassDef, name: str, hops: int = 0) -> Optional[ast.expr]:
    """The value expression of ``name = ...`` in the class body, or in one of its bases."""
    if hops > MAX_HOPS:
        return None
    for node in cls.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return node.value
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return node.value
    for base in _bases(module, cls, hops):
        found = _find_constant(*base, name, hops + 1)
        if found is not None:
            return found
    return None


def _located(target: str) -> Optional[tuple[_Module, ast.ClassDef]]:
    module_name, _, class_name = target.rpartition(".")
    return _locate_class(module_name, class_name) if module_name else None


def static_class_constant(target: str, name: str) -> Any:
    """A literal class attribute of ``target`` (e.g. ``LOGGED_METRICS``), read from source.

    None when the class or the attribute cannot be found or is not a literal: the caller
    then skips whatever check needed it, as for a user's class that declares nothing.
    """
    located = _located(target)
    value = _find_constant(*located, name) if located else None
    if value is None:
        return None
    try:
        return ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError):
        return None


_NO_LITERAL = object()


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NO_LITERAL


def static_signature(target: str) -> Optional[StaticSignature]:
    """``target``'s ``__init__`` parameters (and its literal defaults), read from source;
    None when the source cannot say (see the module docstring)."""
    located = _located(target)
    init = _find_init(*located) if located else None
    if init is None or init.args.kwarg is not None or init.args.vararg is not None:
        return None
    args = init.args
    positional = [a.arg for a in args.posonlyargs + args.args][1:]  # drop self
    with_default = len(args.defaults)
    required = positional[: len(positional) - with_default] if with_default else positional
    keyword_only = [a.arg for a in args.kwonlyargs]
    required += [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is None]
    defaults = {}
    pairs = list(zip(positional[len(positional) - with_default:], args.defaults))
    pairs += [(a.arg, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
    for name, node in pairs:
        value = _literal(node)
        if value is not _NO_LITERAL:
            defaults[name] = value
    return StaticSignature(tuple(positional + keyword_only), tuple(required), defaults)
