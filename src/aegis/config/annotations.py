"""A component's argument values against its ``__init__``'s type annotations, read from source.

Aegis's own components have schemas, so Hydra refuses ``model.lr=abc`` while composing. A
model of one's own (README "Bring your own model": ``conf/model/mine.yaml`` naming
``mypkg.tiny.TinyNet``) has none: ``model.width=abc`` for ``width: int`` created a run dir
and ended in a 57-line InstantiationException. The annotations say what each argument
takes; read with ``ast`` (no import: validation never imports torch), the common forms are
checked: ``int``, ``float``, ``str``, ``bool``, ``Optional[X]``/``X | None``, ``Union``,
``list[X]``/``List[X]``/``Sequence[X]``/``tuple[X, ...]``, a fixed ``tuple[X, Y]`` (its
length too) and ``Literal[...]``. Anything else (a class of the user's, a ``Callable``) is
accepted, as is a value interpolated from the data that is not known yet (``null`` until
the data is cached).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any, Callable, Optional

from aegis.config import signature as sig

_SEQUENCES = {"list", "List", "Sequence", "MutableSequence", "Iterable", "Collection", "tuple", "Tuple", "ListConfig"}


@dataclass(frozen=True)
class Expectation:
    accepts: Callable[[Any], bool]
    words: str


def _name(node: ast.expr) -> Optional[str]:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr  # typing.Optional, t.List, collections.abc.Sequence
    return None


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_SCALARS = {
    "int": Expectation(_whole, "a whole number"),
    "float": Expectation(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "str": Expectation(lambda v: isinstance(v, (str, int, float)) and not isinstance(v, bool), "a string"),
    "bool": Expectation(lambda v: isinstance(v, bool), "true or false"),
}
_NONE = Expectation(lambda v: v is None, "null")


def _union(options: list[Optional[Expectation]]) -> Optional[Expectation]:
    if any(option is None for option in options):
        return None  # one alternative cannot be checked: accept
    known = [o for o in options if o is not None]
    words = " or ".join(o.words for o in known)
    return Expectation(lambda v: any(o.accepts(v) for o in known), words)


def expectation(node: Optional[ast.expr]) -> Optional[Expectation]:
    """What an annotation accepts, or None when it cannot be checked from source."""
    if node is None:
        return None
    if isinstance(node, ast.Constant):
        if node.value is None:
            return _NONE
        if isinstance(node.value, str):  # a string annotation ("int", "list[int]")
            try:
                return expectation(ast.parse(node.value, mode="eval").body)
            except SyntaxError:
                return None
        return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):  # X | None
        return _union([expectation(node.left), expectation(node.right)])
    name = _name(node)
    if name in _SCALARS:
        return _SCALARS[name]
    if not isinstance(node, ast.Subscript):
        return None
    outer = _name(node.value)
    inner = node.slice
    items = list(inner.elts) if isinstance(inner, ast.Tuple) else [inner]
    if outer == "Optional":
        return _union([expectation(items[0]), _NONE])
    if outer == "Union":
        return _union([expectation(item) for item in items])
    if outer == "Literal":
        try:
            choices = [ast.literal_eval(item) for item in items]
        except ValueError:
            return None
        return Expectation(lambda v: v in choices, "one of " + ", ".join(repr(c) for c in choices))
    if outer in _SEQUENCES:
        if outer in ("tuple", "Tuple") and not (len(items) == 2 and isinstance(items[1], ast.Constant)
                                                and items[1].value is Ellipsis):
            each = [expectation(item) for item in items]  # a fixed length: tuple[int, int]
            if any(e is None for e in each):
                return Expectation(lambda v: isinstance(v, list) and len(v) == len(each), f"a list of {len(each)}")
            words = f"a list of {len(each)}: [" + ", ".join(e.words for e in each) + "]"
            return Expectation(lambda v: isinstance(v, list) and len(v) == len(each)
                               and all(e.accepts(x) for e, x in zip(each, v)), words)
        item = expectation(items[0])
        if item is None:
            return Expectation(lambda v: isinstance(v, list), "a list")
        return Expectation(lambda v: isinstance(v, list) and all(item.accepts(x) for x in v),
                           f"a list of {item.words.removeprefix('a ')}s" if item.words.startswith("a ")
                           else f"a list of ({item.words})")
    return None


def annotations(target: str) -> dict[str, ast.expr]:
    """``target.__init__``'s annotated parameters, read from source (empty when it cannot say)."""
    located = sig._located(target)
    init = sig._find_init(*located) if located else None
    if init is None:
        return {}
    args = init.args
    params = args.posonlyargs + args.args + args.kwonlyargs
    return {a.arg: a.annotation for a in params if a.annotation is not None}


def problems(target: str, values: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(name, shown value, expected) of each value its annotation refuses."""
    found = []
    for name, annotation in annotations(target).items():
        if name not in values:
            continue
        wanted = expectation(annotation)
        if wanted is None or wanted.accepts(values[name]):
            continue
        found.append((name, ast.unparse(annotation), wanted.words))
    return found
