"""Kubernetes resource quantities (``500m``, ``2``, ``1.5Gi``, ``1e3``).

kubernetes-validate only checks that a quantity is a string or a number, and the API
server's complaint arrives after submission; so Aegis parses them itself, which also
lets it compare a limit with its request.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Optional

_QUANTITY = re.compile(
    r"(?P<number>[+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": "1e-9", "u": "1e-6", "m": "1e-3", "k": "1e3", "M": "1e6", "G": "1e9",
            "T": "1e12", "P": "1e15", "E": "1e18"}


def parse(text: object) -> Optional[Decimal]:
    """The quantity's value, or None when Kubernetes would refuse it."""
    if isinstance(text, bool):
        return None
    match = _QUANTITY.fullmatch(str(text).strip())
    if not match:
        return None
    try:
        number = Decimal(match["number"])
    except InvalidOperation:
        return None
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * Decimal(_DECIMAL[suffix])
    if suffix:
        return number * (Decimal(10) ** int(suffix[1:]))
    return number


def is_quantity(text: object) -> bool:
    return parse(text) is not None
