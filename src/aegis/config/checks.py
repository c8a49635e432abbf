"""Declarative value checks attached to schema fields.

OmegaConf checks types but not ranges; Hydra never calls ``__post_init__`` on
structured configs. So each schema field may carry a ``Check`` in its metadata and
``aegis.config.validation`` applies them to the composed config, where the message can
name the full key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Check:
    """A predicate plus the words that tell the user what would be valid."""

    accepts: Callable[[Any], bool]
    expected: str

    def __call__(self, value: Any) -> bool:
        try:
            return bool(self.accepts(value))
        except TypeError:
            return False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def at_least(bound: float) -> Check:
    return Check(lambda v: _is_number(v) and v >= bound, f"a number >= {bound}")


def greater_than(bound: float) -> Check:
    return Check(lambda v: _is_number(v) and v > bound, f"a number > {bound}")


def fraction(*, allow_zero: bool = True, allow_one: bool = False) -> Check:
    low = "0 <=" if allow_zero else "0 <"
    high = "<= 1" if allow_one else "< 1"

    def accepts(v: Any) -> bool:
        if not _is_number(v):
            return False
        return (v >= 0 if allow_zero else v > 0) and (v <= 1 if allow_one else v < 1)

    return Check(accepts, f"a fraction with {low} x {high}")


def port() -> Check:
    return Check(lambda v: isinstance(v, int) and 1 <= v <= 65535, "a TCP port from 1 to 65535")


def batch_limit() -> Check:
    """Lightning's ``limit_*_batches``/``overfit_batches``: a fraction in [0, 1] or a count."""

    def accepts(v: Any) -> bool:
        if isinstance(v, bool) or not _is_number(v):
            return False
        return v >= 0 if isinstance(v, int) else 0.0 <= v <= 1.0

    return Check(accepts, "a fraction from 0.0 to 1.0 or a whole number of batches >= 0")


def fast_dev_run() -> Check:
    return Check(
        lambda v: isinstance(v, bool) or (isinstance(v, int) and v >= 0),
        "true, false or a whole number of batches >= 0",
    )


def non_empty_positive_ints() -> Check:
    return Check(
        lambda v: len(v) > 0 and all(isinstance(x, int) and x > 0 for x in v),
        "a non-empty list of integers > 0",
    )


def one_of(*choices: Any) -> Check:
    listed = ", ".join(repr(x) for x in choices)
    return Check(lambda v: v in choices, f"one of {listed}")


def non_empty() -> Check:
    return Check(lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string")


def meta(check: Check, help: str = "") -> dict[str, Any]:
    """Field metadata carrying a check (and optional help shown in error messages)."""
    return {"check": check, "help": help}
