"""Hydra's override grammar as a Ray Tune search space.

Researchers write a search the way they write one run: ``model.lr=tag(log,interval(1e-4,1e-1))``
on the command line or under ``hydra.sweeper.params``. Parsing and checking happen here
with Hydra's own parser and no Ray import, so a bad expression fails in one sentence
before Ray starts; ``to_ray`` builds the Ray objects only when the search runs.

=====================================  ====================================
``a,b,c`` / ``choice(a,b,c)``          ``tune.choice`` (categorical)
``tag(grid,choice(...))``              ``tune.grid_search`` (every value, x num_samples)
``range(a,b)`` (step 1, integers)      ``tune.randint(a, b)`` (b excluded, as in range)
``range(a,b,step)`` / float ranges     ``tune.choice`` over the grid's values
``tag(grid,range(...))``               ``tune.grid_search`` over the grid
``interval(a,b)``                      ``tune.uniform(a, b)``
``tag(log,interval(a,b))``             ``tune.loguniform(a, b)`` (0 < a < b)
``tag(int,interval(a,b))``             ``tune.randint(a, b + 1)``
plain value                            fixed for every trial (an ordinary override)
=====================================  ====================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional

from aegis.errors import ConfigError

EXPECTED = (
    "expected a value, a,b,c, choice(...), range(start,stop[,step]), interval(a,b), "
    "tag(log,interval(a,b)), tag(int,interval(a,b)) or tag(grid,choice(...)/range(...))"
)
KNOWN_TAGS = {"log", "int", "grid"}


@dataclass(frozen=True)
class Dimension:
    """One searched key: ``kind`` is choice, grid, randint, uniform or loguniform."""

    key: str
    kind: str
    values: tuple = ()
    low: Optional[float] = None
    high: Optional[float] = None
    source: str = ""

    def to_ray(self) -> Any:
        from ray import tune

        if self.kind == "choice":
            return tune.choice([encode_choice(v) for v in self.values])
        if self.kind == "grid":
            return tune.grid_search([encode_choice(v) for v in self.values])
        if self.kind == "randint":
            return tune.randint(int(self.low), int(self.high))
        if self.kind == "uniform":
            return tune.uniform(self.low, self.high)
        if self.kind == "loguniform":
            return tune.loguniform(self.low, self.high)
        raise AssertionError(self.kind)

    def sample_value(self) -> Any:
        """A value inside the space: composing a config with it checks the key exists."""
        if self.values:
            return self.values[0]
        return int(self.low) if self.kind == "randint" else self.low


# A choice that is a list or a mapping (``model.hidden_dims=choice([64],[256,128])``) goes to
# Ray Tune as a string with this prefix: Optuna's categorical distribution takes only None,
# bool, int, float and str (it warns for a list, and stores it as its repr). ``decoded`` turns
# it back wherever a trial's config is read (the trial's overrides, its record, the console).
ENCODED = "aegis-json:"


def encode_choice(value: Any) -> Any:
    """A choice's value as every Ray Tune searcher can store it: itself, or a tagged JSON string."""
    import json

    if isinstance(value, (list, tuple, dict)):
        return ENCODED + json.dumps(value, separators=(",", ":"))
    return value


def decode_choice(value: Any) -> Any:
    import json

    if isinstance(value, str) and value.startswith(ENCODED):
        return json.loads(value[len(ENCODED):])
    return value


def decoded(config: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's sampled config with list and mapping choices back to themselves."""
    return {key: decode_choice(value) for key, value in (config or {}).items()}


@dataclass
class SearchSpace:
    """The fixed overrides every trial shares, and the searched dimensions by key."""

    fixed: list[str] = field(default_factory=list)
    dims: dict[str, Dimension] = field(default_factory=dict)

    def to_ray(self) -> dict[str, Any]:
        return {key: dim.to_ray() for key, dim in self.dims.items()}

    def trial_overrides(self, params: Mapping[str, Any]) -> list[str]:
        """The override strings of one trial: the fixed ones, then its sampled values."""
        return self.fixed + [f"{key}={format_value(params[key])}" for key in self.dims if key in params]


# Characters Hydra's override grammar escapes with a backslash in an unquoted value (its ESC
# lexer token). Written out here rather than calling Hydra's private
# ``Override._get_value_element_as_str``; tests/test_internals.py checks the round trip
# through Hydra's public parser.
_ESCAPED = "\\()[]{}:=, \t"


def _escape(text: str) -> str:
    return "".join(f"\\{c}" if c in _ESCAPED else c for c in text)


def format_value(value: Any) -> str:
    """A Python value back in Hydra's override grammar (special characters escaped)."""
    from hydra.core.override_parser.types import QuotedString

    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):  # numpy scalars from a searcher
        value = value.item()
    if value is None:
        return "null"
    if isinstance(value, QuotedString):
        return value.with_quotes()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (bool, int)):
        return str(value)
    if isinstance(value, str):
        return _escape(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{format_value(k)}:{format_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) as a Hydra override value")


def _bad(key: str, text: str, why: str) -> ConfigError:
    return ConfigError(f"{key}={text} is not a valid search space ({why}): {EXPECTED}.")


def _dimension(override: Any, key: str, text: str) -> Dimension:
    from hydra.core.override_parser.types import ChoiceSweep, Glob, IntervalSweep, RangeSweep

    sweep = override.value()
    if isinstance(sweep, Glob):
        raise _bad(key, text, "glob() selects config files, not a search space")
    tags = set(sweep.tags)
    unknown = tags - KNOWN_TAGS
    if unknown:
        raise _bad(key, text, f"unknown tag {sorted(unknown)[0]!r}")
    if isinstance(sweep, ChoiceSweep):
        if tags - {"grid"}:
            raise _bad(key, text, "choice takes only the grid tag")
        values = tuple(_plain(v) for v in sweep.list)
        if not values:
            raise _bad(key, text, "no values to choose from")
        return Dimension(key, "grid" if "grid" in tags else "choice", values=values, source=text)
    if isinstance(sweep, RangeSweep):
        if tags - {"grid"}:
            raise _bad(key, text, "range takes only the grid tag")
        if sweep.step == 0:
            raise _bad(key, text, "the step is 0")
        values = tuple(sweep.range())
        if not values:
            raise _bad(key, text, "the range is empty")
        integers = all(isinstance(v, int) for v in (sweep.start, sweep.stop, sweep.step))
        if "grid" in tags:
            return Dimension(key, "grid", values=values, source=text)
        if integers and sweep.step == 1:
            return Dimension(key, "randint", low=sweep.start, high=sweep.stop, source=text)
        return Dimension(key, "choice", values=values, source=text)
    if isinstance(sweep, IntervalSweep):
        low, high = float(sweep.start), float(sweep.end)
        if not low < high:
            raise _bad(key, text, f"the lower bound {low:g} is not below the upper bound {high:g}")
        if "grid" in tags:
            raise _bad(key, text, "an interval has no grid")
        if "log" in tags and "int" in tags:
            raise _bad(key, text, "log and int cannot be combined")
        if "log" in tags:
            if low <= 0:
                raise _bad(key, text, f"a log interval needs a lower bound above 0, not {low:g}")
            return Dimension(key, "loguniform", low=low, high=high, source=text)
        if "int" in tags:
            if not (low.is_integer() and high.is_integer()):
                raise _bad(key, text, "an int interval needs whole-number bounds")
            return Dimension(key, "randint", low=int(low), high=int(high) + 1, source=text)
        return Dimension(key, "uniform", low=low, high=high, source=text)
    raise _bad(key, text, f"{type(sweep).__name__} is not supported")


def _plain(value: Any) -> Any:
    from hydra.core.override_parser.types import QuotedString

    if isinstance(value, QuotedString):
        return value.text
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def parse(arguments: Iterable[str], params: Optional[Mapping[str, Any]] = None) -> SearchSpace:
    """Split overrides into fixed ones and searched dimensions; raise ``ConfigError`` on a bad one.

    ``params`` (``hydra.sweeper.params``) come first; the command line wins for a key
    given in both.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    lines: list[tuple[str, str]] = [
        (f"hydra.sweeper.params.{k}", f"{k}={_param_text(v)}") for k, v in (params or {}).items()
    ]
    lines += [(str(a).split("=", 1)[0], str(a)) for a in arguments]
    space = SearchSpace()
    fixed: dict[str, str] = {}
    for origin, line in lines:
        text = line.split("=", 1)[1] if "=" in line else ""
        try:
            override = parser.parse_override(line)
        except HydraException as exc:
            reason = " ".join(str(exc).split())
            raise _bad(origin, text, f"Hydra cannot parse it: {reason.rstrip('.')}") from None
        key = override.get_key_element()
        if override.is_sweep_override():
            fixed.pop(key, None)
            space.dims[key] = _dimension(override, origin if origin.startswith("hydra.sweeper") else key, text)
        else:
            space.dims.pop(key, None)
            fixed[key] = line
    space.fixed = list(fixed.values())
    return space


def _param_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return format_value(value)
