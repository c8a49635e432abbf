"""The Lightning side of a trial: every validation epoch goes to Ray Tune.

A report per epoch is what lets ASHA compare trials at its rungs and stop the worse
ones early. Each report carries the epoch index (1-based, the same across a resume:
ASHA's ``time_attr``, the plot's x-axis and best-trial selection read it, never Ray's
iteration count) and a Ray checkpoint. The checkpoint is a reference, not the weights:
a small directory holding ``pointer.json``, which Ray copies into its trial dir; it names
``reported-<epoch>.ckpt`` in the trial's run dir, a hard link to that epoch's ``last.ckpt``
(no copy: the next ``last.ckpt`` is a new file, renamed into place, so the link keeps this
epoch's). The links of the last few epochs are kept: the driver's saved state can lag the
worker's latest report by a result or two when the driver is killed. Reporting one tells
Ray Tune the trial can be restored, so a resumed search continues the trial (its results, its iteration count, its progress.csv) instead of
starting it over, and the trial continues from exactly the epoch Ray last heard of
(``resume_point``): a ``last.ckpt`` written after it, whose report a killed driver never
received, would leave a hole in the trial's history.

The report goes out at the end of the training epoch, after validation and after
``LastCheckpoint`` has written that epoch's ``last.ckpt``: a trial ASHA stops at this
report still leaves its checkpoint behind.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import lightning.pytorch as L
from lightning.pytorch.callbacks import Checkpoint

from aegis.tune.layout import POINTER_DIR  # in the trial's run dir
POINTER_FILE = "pointer.json"  # in POINTER_DIR/pointer/, the directory Ray copies
REPORTED = "reported-{epoch:04d}.ckpt"  # in POINTER_DIR: the weights of a reported epoch
KEEP_REPORTED = 3


class TuneReport(Checkpoint):
    """A ``Checkpoint`` only so that Lightning orders it with the checkpoint callbacks,
    after ``LastCheckpoint``: by the time Ray Tune hears of an epoch (and perhaps stops
    the trial) that epoch's ``last.ckpt`` is on disk."""

    def __init__(self, trial_id: str, run_dir: Optional[Path] = None) -> None:
        self.trial_id = trial_id
        self.run_dir = run_dir

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
        epoch = trainer.current_epoch + 1  # this epoch is complete: validated, last.ckpt written
        metrics["epoch"] = epoch
        tune.report(metrics, checkpoint=self._pointer(epoch))

    def _pointer(self, epoch: int) -> Any:
        if self.run_dir is None:
            return None
        from ray.tune import Checkpoint as RayCheckpoint

        from aegis.core.files import write_json

        last = self.run_dir / "checkpoints" / "last.ckpt"
        if not last.is_file():
            return None
        folder = self.run_dir / POINTER_DIR
        pointer = folder / "pointer"
        pointer.mkdir(parents=True, exist_ok=True)
        reported = folder / REPORTED.format(epoch=epoch)
        _link(last, reported)
        for old in sorted(folder.glob("reported-*.ckpt"))[:-KEEP_REPORTED]:
            old.unlink(missing_ok=True)
        write_json(pointer / POINTER_FILE, {"checkpoint": str(reported), "epoch": epoch, "trial_id": self.trial_id})
        return RayCheckpoint.from_directory(str(pointer))


def _link(source: Path, target: Path) -> None:
    """``target`` becomes ``source``'s file, atomically: a hard link, else (a filesystem
    without them) a copy."""
    import os
    import shutil

    temp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    temp.unlink(missing_ok=True)
    try:
        os.link(source, temp)
    except OSError:
        shutil.copyfile(source, temp)
    os.replace(temp, target)


def last_recorded_epoch(trial_dir: Optional[str]) -> Optional[int]:
    """The last epoch Ray Tune recorded a result of for this trial (its ``progress.csv``), or
    None when there is none to read (a new trial, or a trial dir this worker cannot see)."""
    from aegis.tune.progress import progress_rows, row_epoch

    epochs = [epoch for epoch in map(row_epoch, progress_rows(trial_dir)) if epoch is not None]
    return max(epochs) if epochs else None


def resume_point(checkpoint: Any, run_dir: Path, recorded_epoch: Optional[int] = None) -> Optional[Path]:
    """Where a restored trial continues: the checkpoint of the last epoch Ray Tune recorded,
    or None to start over.

    Ray Tune records an epoch's result (progress.csv, the scheduler) before it has fetched that
    report's checkpoint (a separate save task), so a search stopped in between restores the
    trial from the previous epoch's checkpoint (``checkpoint``: ``ray.tune.get_checkpoint()``)
    with the later result already in its history; ``recorded_epoch`` (``last_recorded_epoch``)
    is that result's epoch, and its kept link continues the trial after it, so no epoch runs
    twice. A trial Ray has neither a checkpoint nor a result of starts over even if its run
    dir holds checkpoints (from before a kill of the driver): their epochs never reached the
    search, so they are dropped."""
    import shutil

    from aegis.core.files import read_json

    recorded = (run_dir / POINTER_DIR / REPORTED.format(epoch=recorded_epoch)) if recorded_epoch else None
    if recorded is not None and not recorded.is_file():
        recorded = None
    if checkpoint is None:
        if recorded is not None:
            return recorded
        for stale in (run_dir / "checkpoints", run_dir / POINTER_DIR):
            if stale.is_dir():
                shutil.rmtree(stale)
        return None
    with checkpoint.as_directory() as folder:
        pointer = read_json(Path(folder) / POINTER_FILE) or {}
    if recorded is not None and recorded_epoch > int(pointer.get("epoch") or 0):
        return recorded
    path = Path(pointer["checkpoint"]) if pointer.get("checkpoint") else None
    return path if path is not None and path.is_file() else None
