"""Hydra's composition errors, rewritten as one sentence naming the key and what is valid.

Hydra reports an unknown key or a wrong type in three or more lines (its message, the
OmegaConf cause with ``full_key``/``object_type``, and a hint about HYDRA_FULL_ERROR);
everything Aegis refuses itself is one ``Error: ...`` line per problem (validation lists
them all, ``aegis.errors.ConfigErrors``). :func:`sentence` turns the exceptions Hydra raises
while composing into that form, from the exception's structured fields where it has them
and its message otherwise. Composition stops at its first error, so that is one line.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Any, Optional

from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException
from omegaconf.errors import OmegaConfBaseException

_MERGING = re.compile(r"Error merging override (?P<line>.+)")
_COULD_NOT_OVERRIDE = re.compile(r"Could not override '(?P<key>[^']+)'")
_MISSING_OPTION = re.compile(r"Could not find '(?P<path>[^']+)'")
_APPEND_EXISTING = re.compile(r"Could not append to config\. An item is already at '(?P<key>[^']+)'")
_REMOVE_PREFIX = re.compile(r"Either remove \+ prefix: '(?P<line>[^']+)'")
_MULTIPLE_VALUES = re.compile(r"Multiple values for (?P<group>\S+?)\. To override a value use 'override [^:]+: (?P<option>[^']+)'")
_DELETE_MISSING = re.compile(r"Could not delete from config\. '(?P<key>[^']+)' does not exist")
_DELETE_MISMATCH = re.compile(r"Could not delete from config\. The value of '(?P<key>[^']+)' is (?P<actual>.+) and not (?P<given>.+?)\.?$", re.M)
_AMBIGUOUS = re.compile(r"Ambiguous value for argument '(?P<line>[^']+)'")
_APPEND_INSTEAD = re.compile(r"To append to your config use (?P<line>.+)")
_SWEEP_IN_RUN = re.compile(r"Sweep parameters '(?P<line>[^']+)' requires --multirun")
# Hydra appends the offending value (often a whole config node) to some merge errors.
_VALUE_TAIL = re.compile(r"\.? value: .*$", re.S)
_MAX_GENERIC = 300

# Options that moved to another group: group -> option -> the sentence that says the new spelling.
RENAMED_OPTIONS = {
    "launcher": {
        "ray-tune": ("launcher=ray-tune is now search=ray-tune: a search is its own group and keeps every "
                     "hydra.sweeper key (python train.py search=ray-tune 'model.lr=tag(log,interval(1e-4,1e-1))' "
                     "hydra.sweeper.num_samples=8)."),
    },
}

_CONVERSIONS = {
    "Integer": "expected a whole number",
    "Float": "expected a number",
    "Boolean": "expected true or false",
}


def _first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "").rstrip(".")


def _keys_of(object_type: Any) -> list[str]:
    if isinstance(object_type, type) and dataclasses.is_dataclass(object_type):
        return [f.name for f in dataclasses.fields(object_type) if not f.name.startswith("_")]
    return []


def _parses(line: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        OverridesParser.create().parse_override(line)
    except Exception:
        return False
    return True


def _adding(full_key: str) -> str:
    """The override that adds ``full_key``: ``+a.b=<value>``, or ``'+a={b: <value>}'`` when the
    dotted form does not parse (``+launcher.env.1BAD=...``: a key that starts with a digit)."""
    parent, _, leaf = full_key.rpartition(".")
    if _parses(f"+{full_key}=x") or not parent:
        return f"+{full_key}=<value>"
    return f"'+{parent}={{{leaf}: <value>}}'"


def _not_an_argument(full_key: str, parent: Any) -> Optional[str]:
    """For a key of a ``_target_`` node without a schema (a model of one's own): the class's
    arguments, read from source, and the nearest one."""
    from omegaconf import DictConfig, OmegaConf

    if not isinstance(parent, DictConfig) or OmegaConf.get_type(parent) not in (dict, None):
        return None
    try:
        target = parent.get("_target_")
    except Exception:
        return None
    from aegis.config.signature import static_signature

    signature = static_signature(target) if isinstance(target, str) else None
    if signature is None:
        return None
    parent_key, _, leaf = full_key.rpartition(".")
    close = difflib.get_close_matches(leaf, signature.parameters, n=1)
    hint = f" (did you mean {parent_key}.{close[0]}?)" if close else ""
    return f"{full_key} is not an argument of {target}{hint}: expected one of {', '.join(signature.parameters)}."


def unknown_key(full_key: str, object_type: Any) -> str:
    """The sentence for a key no schema of ``object_type`` has: its "did you mean", or the options that have it."""
    parent, _, leaf = full_key.rpartition(".")
    keys = _keys_of(object_type)
    if not keys:
        return f"{full_key} is not a key of the config: expected an existing key, or {_adding(full_key)} to add one."
    close = difflib.get_close_matches(leaf, keys, n=1)
    hint = f" (did you mean {parent + '.' if parent else ''}{close[0]}?)" if close else ""
    where = f"{parent}" if parent else "the top level"
    options = _group_options(parent)
    others = [option for option, schema in options if leaf in _keys_of(schema)]  # beats a near key here
    if others:
        selected = next((option for option, schema in options if schema is object_type), None)
        this = f"{parent}={selected}" if selected else f"the {parent} option selected"
        listed = [f"{parent}={option}" for option in others]
        listed = ", ".join(listed[:-1]) + f" or {listed[-1]}" if len(listed) > 1 else listed[0]
        return (f"{full_key} is not a key of {this}, only of {listed}: expected one of those options "
                f"({parent}={others[0]} {full_key}=...), or a key of {this} ({', '.join(keys)}).")
    return f"{full_key} is not a key of {where}{hint}: expected one of {', '.join(keys)}."


def _group_options(group: str) -> list[tuple[str, Any]]:
    """(option, schema) of each schema-backed option of config group ``group``, the option
    named as on the command line, in name order (``fault.rank`` is a key of fault=exit's
    schema but not of the default fault=none's)."""
    if not group:
        return []
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    store, folder, found = ConfigStore.instance(), group.replace(".", "/"), []
    try:
        names = store.list(folder)
    except (OSError, KeyError, ValueError):
        return []
    for name in names:
        option = name[: -len(".yaml")] if name.endswith(".yaml") else name
        if not option.endswith("_schema"):
            continue
        schema = OmegaConf.get_type(store.load(f"{folder}/{name}").node)
        option = option[: -len("_schema")]
        found.append((option.replace("_", "-") if folder == "launcher" else option, schema))  # k8s_job_schema: k8s-job
    return sorted(found, key=lambda pair: pair[0])


def _wrong_value(line: str, cause: Optional[BaseException]) -> str:
    key, _, value = line.partition("=")
    key = getattr(cause, "full_key", None) or key.lstrip("+~")
    reason = _first_line(str(cause)) if cause is not None else ""
    converted = re.search(r"could not be converted to (\w+)", reason)
    choices = re.search(r"expected one of \[(?P<choices>[^\]]*)\]", reason)
    if converted and converted.group(1) in _CONVERSIONS:
        expected = _CONVERSIONS[converted.group(1)]
    elif choices:
        expected = f"expected one of {choices.group('choices')}"
    elif "is not a ListConfig, list or tuple" in reason:
        expected = "expected a list such as [1,2]"
    elif "is not Optional" in reason:
        expected = "this key cannot be null, expected a value"
    elif "Cannot convert" in reason and "to string" in reason:
        expected = "expected a single string"
    elif "is not a subclass of" in reason:
        expected = f"expected keys under {key} (e.g. {key}.<key>=<value>), not a single value"
    else:
        expected = reason[0].lower() + reason[1:] if reason else "Hydra could not merge it"
    return f"{key}={value} is invalid: {expected}."


def _missing_option(message: str) -> Optional[str]:
    found = _MISSING_OPTION.search(message)
    if found is None:
        return None
    group, _, option = found.group("path").rpartition("/")
    if option in RENAMED_OPTIONS.get(group, {}):
        return RENAMED_OPTIONS[group][option]
    listed = re.search(r"Available options in '[^']+':\n(?P<options>(?:\t.*\n?)*)", message)
    options = [o.strip() for o in listed.group("options").splitlines()] if listed else []
    options = [o for o in options if o and not o.endswith("_schema")]
    if not group:
        return f"{option} is not a config file: expected the name of a config in conf/."
    valid = f"expected one of {', '.join(options)}" if options else "expected an option that exists in conf/"
    return f"{group}={option} is not an option of the {group} group: {valid}."


def sentence(exc: BaseException) -> Optional[str]:
    """One sentence for a Hydra composition error, or None when it is not one of those."""
    if not isinstance(exc, (HydraException, OmegaConfBaseException)):
        return None
    message = str(exc)
    cause = exc.__cause__
    if isinstance(exc, MissingConfigException):
        return _missing_option(message) or _first_line(message) + "."
    if isinstance(exc, OmegaConfBaseException):
        key = getattr(exc, "full_key", None)
        return f"{key + ': ' if key else ''}{_VALUE_TAIL.sub('', _first_line(message))}."
    if not isinstance(exc, ConfigCompositionException):
        return None
    if (found := _COULD_NOT_OVERRIDE.search(message)) is not None:
        append = _APPEND_INSTEAD.search(message)
        if append is not None and "=" in append.group("line") and "{" in append.group("line").partition("=")[2]:
            # key={a: 1} on a mapping of the user's own keys (launcher.env, labels): only + adds them
            key = found.group("key")
            return (f"{key} takes keys of your own, which an override adds only with +: expected "
                    f"'{append.group('line').strip()}' (or +{key}.<key>=<value> for one).")
        key = getattr(cause, "full_key", None) or found.group("key")
        return _not_an_argument(key, getattr(cause, "parent_node", None)) or unknown_key(
            key, getattr(cause, "object_type", None))
    if (found := _MERGING.search(message)) is not None:
        return _wrong_value(found.group("line").strip(), cause)
    if (found := _APPEND_EXISTING.search(message)) is not None:
        plain = _REMOVE_PREFIX.search(message)
        line = plain.group("line") if plain else f"{found.group('key')}=<value>"
        return (f"+{line} adds {found.group('key')}, which already exists: expected {line} to override it "
                f"(or ++{line} to add or override).")
    if (found := _MULTIPLE_VALUES.search(message)) is not None:
        group, option = found.group("group"), found.group("option")
        return f"+{group}={option} adds a second {group} option: expected {group}={option} to replace the default."
    if (found := _DELETE_MISSING.search(message)) is not None:
        key = found.group("key")
        return f"~{key} removes {key}, which does not exist: expected the key of an existing value."
    if (found := _DELETE_MISMATCH.search(message)) is not None:
        key, actual, given = found.group("key", "actual", "given")
        return (f"~{key}={given} removes {key} only if its value is {given}, but it is {actual}: "
                f"expected ~{key} or ~{key}={actual}.")
    if (found := _AMBIGUOUS.search(message)) is not None:
        line = found.group("line")
        return (f"{line} has several values: expected -m (--multirun) to sweep over them, [a,b] for a list, "
                "or quotes for a string with commas.")
    if (found := _SWEEP_IN_RUN.search(message)) is not None:
        return (f"{found.group('line')} is a sweep, which only a multirun runs: expected -m (--multirun), or "
                "search=ray-tune for a search space, without hydra.mode=RUN.")
    return _generic(message, cause)


def _generic(message: str, cause: Optional[BaseException]) -> str:
    """Hydra's message on one line, without the value dumps and ``full_key`` trailers."""
    lines = [line.strip() for line in message.splitlines()
             if line.strip() and not line.strip().startswith(("full_key:", "object_type=", "reference_type="))]
    text = _VALUE_TAIL.sub("", " ".join(lines)).rstrip(".")
    if cause is not None and getattr(cause, "full_key", None):
        text = f"{cause.full_key}: {text} ({_VALUE_TAIL.sub('', _first_line(str(cause)))})"
    if len(text) > _MAX_GENERIC:
        text = text[: _MAX_GENERIC - 3].rstrip() + "..."
    return text + "."
