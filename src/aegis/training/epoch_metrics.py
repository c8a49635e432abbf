"""The shipped classifiers' loss and accuracy, summed by the module and handed to Lightning
once an epoch.

Two ``self.log`` calls a step cost ~0.3 ms of Lightning's bookkeeping (``_ResultCollection``:
metadata checks, a device move and an accumulation each, then a walk of every logged metric
at each batch end), ~7% of a long-epoch training step on this CPU (bench/step_rate.py), to
produce figures read once per epoch plus once every ``log_every_n_steps``. Here a step adds
its loss and its number of correct predictions to two tensors on its device (no host sync),
and ``self.log`` runs only:

- on the training steps whose metrics the loggers write (Lightning's own test, so the same
  steps as before): the step loss, as ``train/loss_step``;
- once at each epoch end, before any callback reads the epoch's metrics: the epoch means,
  synced across ranks, under the names Lightning gave them when they were logged each step
  (``train/loss_epoch`` for the loggers and the progress bar, ``train/loss`` and
  ``train/acc`` for callbacks, early stopping and checkpoint monitors; ``val/*``, ``test/*``).

Lightning calls every non-monitoring callback's ``on_*_epoch_end`` before the module's, so
the epoch figures are logged by a callback the module puts at the front of the trainer's
callback list; the module's own hooks log them too when that callback is gone. A run resumed
mid-epoch continues the training epoch's sums from the checkpoint.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as L
import torch

CHECKPOINT_KEY = "aegis_train_epoch_sums"
STAGES = ("train", "val", "test")


class EpochSums:
    """One stage's running sums this epoch: loss times samples, correct predictions, samples."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.loss_sum = torch.zeros(())
        self.correct = torch.zeros((), dtype=torch.int64)
        self.samples = 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
        samples = len(target)
        if self.loss_sum.device != loss.device:
            self.reset(loss.device)
        self.loss_sum.add_(loss.detach(), alpha=samples)
        self.correct.add_((logits.argmax(dim=1) == target).sum())
        self.samples += samples

    def reset(self, device: Any = None) -> None:
        device = self.loss_sum.device if device is None else device
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.samples = 0

    def log_epoch(self, module: L.LightningModule) -> None:
        """The epoch's means through ``module.log``, then a fresh epoch; nothing for an epoch
        without steps."""
        if not self.samples:
            return
        loss = self.loss_sum / self.samples
        acc = self.correct.float() / self.samples
        common = dict(on_step=False, on_epoch=True, sync_dist=True, batch_size=self.samples)
        if self.stage == "train":
            module.log("train/loss_epoch", loss, prog_bar=True, **common)
            module.log("train/loss", loss, logger=False, **common)
            module.log("train/acc", acc, **common)
        else:
            module.log(f"{self.stage}/loss", loss, prog_bar=True, **common)
            module.log(f"{self.stage}/acc", acc, prog_bar=True, **common)
        self.reset()

    def state_dict(self) -> dict[str, Any]:
        return {"loss_sum": float(self.loss_sum), "correct": int(self.correct), "samples": self.samples}

    def load_state_dict(self, state: dict[str, Any], device: Any) -> None:
        self.reset(device)
        self.loss_sum += float(state.get("loss_sum", 0.0))
        self.correct += int(state.get("correct", 0))
        self.samples = int(state.get("samples", 0))


def epoch_sums() -> dict[str, EpochSums]:
    return {stage: EpochSums(stage) for stage in STAGES}


class LogEpochMetrics(L.Callback):
    """Logs the module's epoch sums before any other callback's epoch-end hook reads them."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        _log(pl_module, "train")

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        _log(pl_module, "val")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        _log(pl_module, "test")


def _log(module: L.LightningModule, stage: str) -> None:
    sums = getattr(module, "epoch_sums", None)
    if isinstance(sums, dict) and isinstance(sums.get(stage), EpochSums):
        sums[stage].log_epoch(module)


def logs_this_step(trainer: Any) -> bool:
    """Whether Lightning writes this training step's metrics to the loggers (every
    ``log_every_n_steps`` steps, the last one before a stop, every step of a fast dev run).
    Lightning's test is private; without it every step logs, which is right and slower."""
    try:
        return bool(trainer._logger_connector.should_update_logs or trainer.fast_dev_run)
    except Exception:  # docs/internals.md: a Lightning without the test
        return True


def put_first(trainer: Any) -> None:
    """The epoch-metrics callback at the front of the trainer's callbacks, once."""
    callbacks = trainer.callbacks
    if not any(isinstance(callback, LogEpochMetrics) for callback in callbacks):
        callbacks.insert(0, LogEpochMetrics())
