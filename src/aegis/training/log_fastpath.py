"""Skip Lightning's device move of a logged metric that is already on the device.

Every ``self.log(...)`` moves the metric's accumulator to the value's device
(``_ResultCollection.log`` calls ``_ResultMetric.to``), and that move walks the metric's
whole ``__dict__`` with ``apply_to_collection``, deep-copying its metadata dataclasses on
the way: 0.22 ms a call on this machine, whatever the device. With two ``self.log`` per
step that was 0.43 ms of a 3.7 ms digits step (12%), spent moving nothing. Here the move
is skipped when every tensor the metric holds is already where it is asked to go; any
other call (a first move, another device, dtype arguments) runs Lightning's own.

Lightning 2.6 internals (``lightning.pytorch.trainer.connectors.logger_connector.result``,
docs/internals.md): when the class or its attributes are not there, nothing is patched
and Lightning runs as shipped. ``AEGIS_LOG_FASTPATH=0`` leaves it unpatched too (for
``bench/data_path.py``'s before/after comparison).
"""

from __future__ import annotations

import os
from typing import Any

import torch

_PATCHED = "_aegis_log_fastpath"


def install() -> bool:
    """Patch ``_ResultMetric.to`` once per process; True when the fast path is in place."""
    if os.environ.get("AEGIS_LOG_FASTPATH", "1") == "0":
        return False
    try:
        from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultMetric

        original = _ResultMetric.__dict__["to"]
        if getattr(original, _PATCHED, False):
            return True

        def to(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not kwargs and len(args) == 1 and isinstance(args[0], torch.device) and _all_on(self, args[0]):
                return self
            return original(self, *args, **kwargs)

        setattr(to, _PATCHED, True)
        to.__wrapped__ = original  # type: ignore[attr-defined]
        to.__doc__ = original.__doc__
        _ResultMetric.to = to
        return True
    except Exception:  # any change in Lightning's internals: leave it as shipped
        return False


def _all_on(metric: Any, device: torch.device) -> bool:
    """Every tensor of the metric (its states and their defaults) is on ``device``; a metric
    holding anything else that could move (a torchmetrics ``Metric``) takes Lightning's path."""
    try:
        return _tensors_on(metric, device)
    except Exception:  # a metric laid out differently: Lightning's own move decides
        return False


def _tensors_on(metric: Any, device: torch.device) -> bool:
    if not getattr(metric, "is_tensor", False):
        return False
    state = vars(metric)
    for name, value in state.items():
        if isinstance(value, torch.Tensor):
            if value.device != device:
                return False
        elif isinstance(value, torch.nn.Module):
            return False
    for value in state.get("_defaults", {}).values():
        if not isinstance(value, torch.Tensor) or value.device != device:
            return False
    return not any(state.get(name) for name in ("_buffers", "_parameters", "_modules", "_cache"))
