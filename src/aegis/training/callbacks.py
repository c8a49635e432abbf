"""Lightning pieces Aegis adds to every Trainer.

- ``AtomicCheckpointIO``: a checkpoint file is complete or absent, never half written,
  so a process killed mid-save leaves the previous ``last.ckpt`` loadable.
- ``PreemptionCheckpoint``: on SIGTERM (Lightning turns it into ``SIGTERMException`` at
  the next batch boundary, on every rank) save ``last.ckpt`` so the rescheduled run
  resumes where this one stopped.
- ``EpochLines``: one plain log line per epoch where a progress bar would be noise.
- ``EndStartupGCPause``: the garbage collector, paused for the start-up, is back on
  when training starts (after data setup and the sanity check).
- ``StepTiming``: when the first training step started and how fast steps ran, for
  ``summary.json`` and the benchmarks.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Optional

import lightning.pytorch as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from aegis.training.startup_gc import StartupGCPause

log = logging.getLogger("aegis.training")


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        target = Path(path)
        if "://" in str(path):  # remote filesystems have their own semantics
            return super().save_checkpoint(checkpoint, path, storage_options)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PreemptionCheckpoint(L.Callback):
    def __init__(self, last_path: Path) -> None:
        self.last_path = last_path
        self.saved: Optional[Path] = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        trainer.save_checkpoint(self.last_path)
        self.saved = self.last_path
        if trainer.is_global_zero:
            log.warning(
                "Preempted (SIGTERM) at epoch %d, step %d: saved %s; re-run with the same run dir to resume.",
                trainer.current_epoch, trainer.global_step, self.last_path,
            )


def _fmt(value: Any) -> str:
    number = float(value)
    return f"{number:.4f}" if abs(number) < 1000 else f"{number:.4g}"


class EpochLines(L.Callback):
    """`epoch 3/20 train/loss=0.1234 val/loss=0.0987 val/acc=0.9722 (1.3s)` on rank 0."""

    def __init__(self) -> None:
        self._started = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()  # a run resumed mid-epoch starts no new epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        shown = " ".join(
            f"{name}={_fmt(metrics[name])}"
            for name in sorted(metrics)
            if name.endswith(("/loss", "/acc")) and not name.endswith("_step")
        )
        elapsed = time.perf_counter() - self._started
        log.info("epoch %d/%d %s (%.1fs)", trainer.current_epoch + 1, trainer.max_epochs, shown, elapsed)


class EndStartupGCPause(L.Callback):
    def __init__(self, startup: StartupGCPause) -> None:
        self.startup = startup

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.startup.end()


class StepTiming(L.Callback):
    def __init__(self) -> None:
        self.first_step_unix: Optional[float] = None
        self.first_step_global: int = 0
        self.end_unix: Optional[float] = None
        self.end_global: int = 0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if self.first_step_unix is None:
            self.first_step_unix = time.time()
            self.first_step_global = trainer.global_step

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.end_unix = time.time()
        self.end_global = trainer.global_step

    def as_dict(self) -> dict[str, Any]:
        steps = self.end_global - self.first_step_global
        span = (self.end_unix or 0.0) - (self.first_step_unix or 0.0)
        return {
            "first_step_unix": self.first_step_unix,
            "train_steps": steps,
            "train_seconds": round(span, 4) if self.end_unix else None,
            "train_steps_per_s": round(steps / span, 3) if self.end_unix and span > 0 else None,
        }
