"""Lightning's per-step hook dispatch without the calls that do nothing.

Every training step Lightning dispatches about ten callback hooks
(``on_train_batch_start``, ``on_before_backward``, ``on_after_backward``,
``on_before_zero_grad``, ...) to *every* callback, each inside a profiler context
labelled with the callback's ``state_key`` (built anew for every call), and checks the
``training_step`` signature with ``inspect.getfullargspec`` twice a step (once in the
loop, once in each ``self.log``). With Aegis's dozen callbacks, most of which implement
none of these hooks, that was ~8% of a long-epoch step (py-spy, bench/step_rate.py).

- ``_call_callback_hooks`` here calls only the callbacks whose hook is not
  ``Callback``'s own no-op (looked up once per class and hook), in the same order, with
  the same ``_current_fx_name`` set around them; with a real profiler configured
  (``trainer.profiler`` is not the pass-through one) Lightning's own function runs, so
  profiles keep every label.
- ``_call_lightning_module_hook`` skips the module's per-batch hooks that are still
  ``ModelHooks``' empty bodies (``NOOP_MODULE_HOOKS``, checked to be empty in the pinned
  Lightning), which Lightning otherwise calls under a profiler context and a
  ``_current_fx_name`` swap (an ``nn.Module.__setattr__``) six times a step.
- ``is_param_in_hook_signature`` remembers its answer per function: a function's
  argument list does not change.

Lightning 2.6 internals (``lightning.pytorch.trainer.call._call_callback_hooks``,
``_call_lightning_module_hook``,
``lightning.pytorch.utilities.signature_utils.is_param_in_hook_signature`` as imported
by name into the modules that use it; docs/internals.md). When any of them is not there,
nothing is patched. ``AEGIS_HOOK_FASTPATH=0`` leaves Lightning as shipped (for
bench/step_rate.py's before/after).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Optional

_PATCHED = "_aegis_hook_fastpath"
NOOP_MODULE_HOOKS = frozenset({
    "on_train_batch_start", "on_train_batch_end", "on_before_backward", "on_after_backward", "on_before_zero_grad",
    "on_before_optimizer_step", "on_validation_batch_start", "on_validation_batch_end", "on_test_batch_start",
    "on_test_batch_end", "on_predict_batch_start", "on_predict_batch_end",
})
_SIGNATURE_USERS = (  # modules that imported is_param_in_hook_signature by name
    "lightning.pytorch.core.module",
    "lightning.pytorch.loops.training_epoch_loop",
    "lightning.pytorch.loops.evaluation_loop",
    "lightning.pytorch.loops.prediction_loop",
    "lightning.pytorch.loops.utilities",
)


def install() -> bool:
    """Patch once per process; True when both fast paths are in place."""
    if os.environ.get("AEGIS_HOOK_FASTPATH", "1") == "0":
        return False
    try:
        import importlib

        from lightning.pytorch.callbacks import Callback, Checkpoint, EarlyStopping
        from lightning.pytorch.core.hooks import ModelHooks
        from lightning.pytorch.profilers import PassThroughProfiler
        from lightning.pytorch.trainer import call
        from lightning.pytorch.utilities import signature_utils

        users = [importlib.import_module(name) for name in _SIGNATURE_USERS]
        original_hooks = call._call_callback_hooks
        original_module_hook = call._call_lightning_module_hook
        original_signature = signature_utils.is_param_in_hook_signature
        if getattr(original_hooks, _PATCHED, False):
            return True
        if any(getattr(module, "is_param_in_hook_signature", None) is None for module in users[:2]):
            return False
        hooks = _callback_hooks(original_hooks, Callback, (EarlyStopping, Checkpoint), PassThroughProfiler)
        signature = _remembered(original_signature)
        module_hook = _module_hook(original_module_hook, ModelHooks, PassThroughProfiler)
        call._call_callback_hooks = hooks
        call._call_lightning_module_hook = module_hook
        signature_utils.is_param_in_hook_signature = signature
        for module in users:
            if getattr(module, "is_param_in_hook_signature", None) is original_signature:
                module.is_param_in_hook_signature = signature
        return True
    except Exception:  # any change in Lightning's internals: leave it as shipped
        return False


def _callback_hooks(original: Callable[..., None], base: type, monitoring: tuple[type, ...],
                    passthrough: type) -> Callable[..., None]:
    log = logging.getLogger("lightning.pytorch.trainer.call")
    overrides: dict[tuple[type, str], bool] = {}

    def implements(callback: Any, hook_name: str) -> bool:
        key = (type(callback), hook_name)
        known = overrides.get(key)
        if known is None:
            known = overrides[key] = getattr(type(callback), hook_name, None) is not getattr(base, hook_name, None)
        return known or hook_name in getattr(callback, "__dict__", ())

    def _call_callback_hooks(trainer: Any, hook_name: str, *args: Any, monitoring_callbacks: Optional[bool] = None,
                             **kwargs: Any) -> None:
        if type(trainer.profiler) is not passthrough or not hasattr(base, hook_name):
            return original(trainer, hook_name, *args, monitoring_callbacks=monitoring_callbacks, **kwargs)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(f"{trainer.__class__.__name__}: calling callback hook: {hook_name}")
        callbacks = [cb for cb in trainer.callbacks if implements(cb, hook_name)]
        if monitoring_callbacks is True:
            callbacks = [cb for cb in callbacks if isinstance(cb, monitoring)]
        elif monitoring_callbacks is False:
            callbacks = [cb for cb in callbacks if not isinstance(cb, monitoring)]
        if not callbacks:
            return  # nothing runs: the module's current hook name would be set and restored unseen
        pl_module = trainer.lightning_module
        if pl_module:
            prev_fx_name = pl_module._current_fx_name
            pl_module._current_fx_name = hook_name
        for callback in callbacks:
            fn = getattr(callback, hook_name)
            if callable(fn):
                fn(trainer, trainer.lightning_module, *args, **kwargs)
        if pl_module:
            pl_module._current_fx_name = prev_fx_name

    setattr(_call_callback_hooks, _PATCHED, True)
    _call_callback_hooks.__wrapped__ = original  # type: ignore[attr-defined]
    return _call_callback_hooks


def _module_hook(original: Callable[..., Any], base: type, passthrough: type) -> Callable[..., Any]:
    empty = {name: getattr(base, name) for name in NOOP_MODULE_HOOKS if hasattr(base, name)}

    def _call_lightning_module_hook(trainer: Any, hook_name: str, *args: Any, pl_module: Any = None,
                                    **kwargs: Any) -> Any:
        noop = empty.get(hook_name)
        if noop is not None and type(trainer.profiler) is passthrough:
            module = pl_module or trainer.lightning_module
            if (module is not None and getattr(type(module), hook_name, None) is noop
                    and hook_name not in vars(module)):
                return None  # what the empty body returns
        return original(trainer, hook_name, *args, pl_module=pl_module, **kwargs)

    setattr(_call_lightning_module_hook, _PATCHED, True)
    _call_lightning_module_hook.__wrapped__ = original  # type: ignore[attr-defined]
    return _call_lightning_module_hook


def _remembered(original: Callable[..., bool]) -> Callable[..., bool]:
    answers: dict[tuple[Any, ...], bool] = {}

    def is_param_in_hook_signature(hook_fx: Callable, param: str, explicit: bool = False,
                                   min_args: Optional[int] = None) -> bool:
        function = getattr(hook_fx, "__func__", hook_fx)
        try:
            key = (function, getattr(hook_fx, "__wrapped__", None), param, explicit, min_args)
            return answers[key]
        except TypeError:  # unhashable: ask every time
            return original(hook_fx, param, explicit, min_args)
        except KeyError:
            answer = answers[key] = original(hook_fx, param, explicit, min_args)
            return answer

    setattr(is_param_in_hook_signature, _PATCHED, True)
    is_param_in_hook_signature.__wrapped__ = original  # type: ignore[attr-defined]
    return is_param_in_hook_signature
