"""Compose the config once per ``python train.py``, not twice.

Hydra 1.3's ``@hydra.main`` composes the whole config to learn ``hydra.mode`` (RUN or
MULTIRUN may be set inside the config), throws it away, and composes again for the run
(hydra-ecosystem/hydra#3440, open). On this tree a composition is ~0.11 s of a 0.4 s
config-only command, and every run, dry run and torchrun rank paid it twice.

:func:`compose_once` keeps Hydra's dispatch exactly as it is and reuses the probe's
result for the real composition when Hydra would have produced the same config: same
config name, the same overrides plus at most the ``hydra.mode=...`` line Hydra appends
after the probe, the sweep-override rules of the real mode pass (they run as Hydra
runs them, so ``x=1,2`` without ``-m`` fails the same way), and, for a single run, no
mandatory ``???`` config group was skipped (the probe skips those; a run must fail on
them). Anything else, or a Hydra whose internals differ, falls back to Hydra's own
second composition.

Private Hydra names used here (hydra-core>=1.3.8,<1.4; docs/internals.md): there is no
public hook for the mode probe, so ``ConfigLoaderImpl.load_configuration`` is wrapped while
the app runs, and the reuse path calls ``ConfigLoaderImpl._apply_overrides_to_config``.
Any exception while installing the wrapper (import, missing attribute) leaves Hydra
untouched; any exception on the reuse path (other than the sweep-rule check, which Hydra's
own composition would raise too) falls back to a normal composition.

The probe also hides errors: Hydra's ``get_mode`` swallows any exception of the probe and
falls back to RUN, where a sweep override (``model.lr=tag(log,interval(1e-4,1e-1))``,
``x=1,2``) fails sweep validation first, so a typo next to it
(``search=ray-tune hydra.sweeper.num_sample=4``, ``launcher=nope``) was reported only as
"... requires --multirun". When the probe failed and that RUN composition fails on its sweep
overrides, the probe's own error is raised instead: it is the config's real problem, and
adding ``-m`` would only have led to it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MODE_KEY = "hydra.mode"


@dataclass
class _Probe:
    config_name: str | None
    overrides: list[str]
    cfg: Any


def _reusable(probe: _Probe, config_name: str | None, overrides: list[str]) -> list[str] | None:
    """The override lines Hydra added after the probe, or None when the probe cannot stand in."""
    if config_name != probe.config_name or overrides[: len(probe.overrides)] != probe.overrides:
        return None
    extra = overrides[len(probe.overrides):]
    if len(extra) > 1 or any(not line.startswith(f"{MODE_KEY}=") for line in extra):
        return None
    return extra


def _skipped_mandatory_group(cfg: Any) -> bool:
    from omegaconf import OmegaConf

    choices = cfg.hydra.runtime.choices
    return any(OmegaConf.is_missing(choices, group) for group in choices)


def _has_sweep(overrides: list[str]) -> bool:
    """Some override sweeps (``x=1,2``, ``tag(...)``): a RUN composition fails on it first."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return any(o.is_sweep_override() for o in OverridesParser.create().parse_overrides(list(overrides)))
    except Exception:  # unparsable: let Hydra's own composition report it
        return False


def _private_loader() -> tuple[Any, Any, Any]:
    """Hydra's private config loader and the two helpers of its own composition reused here."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    return (ConfigLoaderImpl, ConfigLoaderImpl._apply_overrides_to_config,
            ConfigLoaderImpl.validate_sweep_overrides_legal)


def _refuse_hydra_calls(cfg: Any) -> None:
    """What Hydra itself instantiates from the config (its callbacks, logging factories) is
    checked here, the one point between composing and Hydra calling them."""
    from aegis.config.targets import hydra_problems
    from aegis.errors import ConfigErrors

    sentences = hydra_problems(cfg)
    if sentences:
        raise ConfigErrors(sentences)


@contextlib.contextmanager
def compose_once() -> Iterator[None]:
    """While active, a Hydra app composes its config once for a run or a multirun."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from hydra.types import RunMode

    try:
        ConfigLoaderImpl, apply_overrides, validate_legal = _private_loader()
        original = ConfigLoaderImpl.load_configuration
    except Exception:  # a Hydra without these internals: compose twice, as before
        yield
        return
    state: dict[str, Any] = {}

    def reuse(probe: _Probe, extra: list[str], overrides: list[str], run_mode: Any, from_shell: bool) -> Any:
        try:
            parsed = OverridesParser.create().parse_overrides(overrides=list(overrides))
            validate_legal(overrides=parsed, run_mode=run_mode, from_shell=from_shell)
        except HydraException:  # the sweep rules of this mode: Hydra's own composition raises it too
            raise
        except Exception:  # internals changed: Hydra's own composition instead
            return None
        try:
            added = parsed[len(parsed) - len(extra):] if extra else []
            apply_overrides(added, probe.cfg)
            probe.cfg.hydra.overrides.hydra.extend([line.input_line for line in added])
        except Exception:  # internals changed: Hydra's own composition instead
            return None
        return probe.cfg

    def load_configuration(self: Any, config_name: str | None, overrides: list[str], run_mode: Any,
                           from_shell: bool = True, validate_sweep_overrides: bool = True) -> Any:
        cfg = _load_configuration(self, config_name, overrides, run_mode, from_shell, validate_sweep_overrides)
        _refuse_hydra_calls(cfg)
        return cfg

    def _load_configuration(self: Any, config_name: str | None, overrides: list[str], run_mode: Any,
                            from_shell: bool = True, validate_sweep_overrides: bool = True) -> Any:
        probe = state.pop("probe", None)
        probe_error = state.pop("probe_error", None)
        is_mode_probe = run_mode == RunMode.MULTIRUN and not validate_sweep_overrides
        if probe is not None and not is_mode_probe:
            extra = _reusable(probe, config_name, list(overrides))
            if extra is not None and (run_mode == RunMode.MULTIRUN or not _skipped_mandatory_group(probe.cfg)):
                cfg = reuse(probe, extra, overrides, run_mode, from_shell)
                if cfg is not None:
                    return cfg
        if probe_error is not None and run_mode == RunMode.RUN and _has_sweep(overrides):
            raise probe_error
        try:
            cfg = original(self, config_name=config_name, overrides=overrides, run_mode=run_mode,
                           from_shell=from_shell, validate_sweep_overrides=validate_sweep_overrides)
        except Exception as exc:
            if is_mode_probe:
                state["probe_error"] = exc
            raise
        if is_mode_probe:
            state["probe"] = _Probe(config_name, list(overrides), cfg)
        return cfg

    try:
        ConfigLoaderImpl.load_configuration = load_configuration  # type: ignore[method-assign]
    except Exception:  # cannot patch: compose twice, as before
        yield
        return
    try:
        yield
    finally:
        ConfigLoaderImpl.load_configuration = original  # type: ignore[method-assign]
