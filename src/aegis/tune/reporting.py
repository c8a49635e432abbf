"""The Lightning side of a trial: every validation epoch goes to Ray Tune.

A report per epoch is what lets ASHA compare trials at its rungs and stop the worse
ones early. The checkpoint itself stays in the trial's run dir (Aegis's own
``last.ckpt``/``best-*.ckpt``), which is also what a resumed trial continues from, so
nothing is copied into Ray's storage. The report goes out at the end of the training
epoch, after validation and after ``LastCheckpoint`` has written that epoch's
``last.ckpt``: a trial ASHA stops at this report still leaves its checkpoint behind.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as L
from lightning.pytorch.callbacks import Checkpoint


class TuneReport(Checkpoint):
    """A ``Checkpoint`` only so that Lightning orders it with the checkpoint callbacks,
    after ``LastCheckpoint``: by the time Ray Tune hears of an epoch (and perhaps stops
    the trial) that epoch's ``last.ckpt`` is on disk."""

    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or not any(k.startswith("val/") for k in trainer.callback_metrics):
            return
        from ray import tune

        metrics: dict[str, Any] = {}
        for name, value in trainer.callback_metrics.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if not math.isnan(number):
                metrics[name] = number
        metrics["epoch"] = trainer.current_epoch + 1
        tune.report(metrics)
