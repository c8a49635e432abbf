"""How every rule reads a config value and shows it back in a sentence.

A ``???`` or an interpolation that cannot resolve becomes a ``ConfigError`` naming the
full key; a value is shown as the user would type it; a value interpolated from others
is told apart from one written, so a rule reports the written cause and skips what it
feeds. Shared by all rule areas, so these answers are the same in every sentence.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from aegis.config.checks import Check
from aegis.errors import ConfigError

# A plain reference to another key inside an interpolation: ${data.num_classes}, aegis-${task_name}.
REFERENCE = re.compile(r"\$\{\s*([A-Za-z_][\w.]*)\s*\}")


def read(node: DictConfig, name: str, key: str) -> Any:
    """``node[name]`` (full key ``key``), or a ``ConfigError`` saying why it cannot be read."""
    try:
        return node[name]
    except MissingMandatoryValue:
        raise ConfigError(f"{key} has no value ('???'): expected {key}=<value>.", key) from None
    except OmegaConfBaseException as exc:
        reason = str(exc).splitlines()[0].rstrip(".")
        raise ConfigError(f"{key} could not be resolved: {reason}.", key) from None


def plain(value: Any) -> Any:
    """A value as plain Python: containers resolved, an Enum member as its value."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    if hasattr(value, "value") and hasattr(value, "name"):  # an Enum member
        return value.value
    return value


def shown(value: Any) -> str:
    """A value as the user would type it, on one line (strings quoted, so '' shows)."""
    value = plain(value)
    if isinstance(value, list):
        return "[" + ",".join(str(x) for x in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)


def field_check(schema: type, name: str) -> Optional[Check]:
    """The check on ``schema.name``, inherited from a base when a subclass redefines the field.

    A dataclass field redefined in a subclass (``num_classes: int = 10``) replaces the
    base's field and its metadata, which silently dropped the base's range check.
    """
    for cls in schema.__mro__:
        found = getattr(cls, "__dataclass_fields__", {}).get(name)
        if found is not None and "check" in found.metadata:
            return found.metadata["check"]
    return None


def is_interpolation(node: DictConfig, name: str) -> bool:
    """The value of ``node.name`` (or an item of it) is derived from another key."""
    if OmegaConf.is_interpolation(node, name):
        return True
    if name not in node or OmegaConf.is_missing(node, name):
        return False
    child = node[name]
    if isinstance(child, ListConfig):
        return any(OmegaConf.is_interpolation(child, i) for i in range(len(child)))
    return False


def written(node: Any, name: Any) -> Any:
    """The value of ``node[name]`` as written, interpolations unresolved."""
    return OmegaConf.to_container(node, resolve=False)[name]


def sources(raw: Any) -> list[str]:
    """The keys a value (as written, unresolved) is interpolated from."""
    if isinstance(raw, list):
        return [key for item in raw for key in sources(item)]
    return REFERENCE.findall(raw) if isinstance(raw, str) else []
