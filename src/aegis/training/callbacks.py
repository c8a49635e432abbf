"""Lightning pieces Aegis adds to every Trainer.

- ``LastCheckpoint``: ``last.ckpt`` on its own schedule (every epoch end, and every
  ``checkpoint.every_n_steps`` / ``checkpoint.every_minutes``), whatever the monitored
  metric does, so a kill -9 loses at most the work since the last save. (Lightning's
  ``save_last`` follows the top-k saves: with a monitor it lagged the run by 17 epochs.)
- ``FiniteLossGuard``: a loss that became NaN/inf stops the run as failed, before a
  checkpoint of broken weights replaces a good one.
- ``MetricsSnapshot``: the last epoch's metrics as plain floats, for the record of a run
  that fails (reading ``trainer.callback_metrics`` then would sync with ranks that may
  be dead).
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
import math
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from aegis.training.startup_gc import StartupGCPause

log = logging.getLogger("aegis.training")


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite; the message says when and what to try."""

    explained = True  # aegis.training.run: one error line, no traceback


class FiniteLossGuard(L.Callback):
    """Stops training when the loss is no longer finite.

    On an accelerator the per-step flag stays on the device and is read (one host sync)
    only every ``check_every_n_steps`` steps, before any checkpoint is saved and at each
    epoch end; a CPU loss is read at once (a float, no sync to avoid: three small tensor
    ops per step cost 0.1 ms, 2.5% of a digits step). Ranks agree on the outcome, so a
    gang stops together.
    """

    def __init__(self, check_every_n_steps: int) -> None:
        self.check_every_n_steps = max(1, check_every_n_steps)
        self._bad: Any = None  # False/True, or a device tensor not yet read
        self._clean_through = 0  # the last global step known to be finite

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._clean_through = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        if loss.device.type == "cpu" and loss.numel() == 1:
            bad: Any = not math.isfinite(loss.item())
        else:
            bad = ~torch.isfinite(loss.detach()).all()
        self._bad = bad if self._bad is None else self._bad | bad
        if trainer.global_step % self.check_every_n_steps == 0:
            self.check(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer)

    def check(self, trainer: L.Trainer) -> None:
        bad = bool(self._bad.item() if isinstance(self._bad, torch.Tensor) else self._bad)
        bad = bool(trainer.strategy.reduce_boolean_decision(bad, all=False))
        if not bad:
            self._bad = None
            self._clean_through = trainer.global_step
            return
        raise NonFiniteLoss(
            f"the training loss became NaN or infinite between steps {self._clean_through} and "
            f"{trainer.global_step} (epoch {trainer.current_epoch}): lower model.lr, set "
            "trainer.gradient_clip_val, or check the data for non-finite values"
        )


class LastCheckpoint(Checkpoint):
    """``last.ckpt`` at every epoch end, every ``every_n_steps`` optimizer steps and every
    ``every_minutes``, and once more at the end of training if steps ran since.

    A ``Checkpoint`` so that Lightning runs it after ``ModelCheckpoint`` (whose best-k state
    it then carries) and before a search's reporter. The time trigger is rank 0's clock,
    broadcast: every rank of a gang must enter a save together.
    """

    def __init__(self, path: Path, every_n_steps: Optional[int] = None, every_minutes: Optional[float] = None,
                 guard: Optional[FiniteLossGuard] = None) -> None:
        self.path = path
        self.every_n_steps = every_n_steps
        self.every_s = every_minutes * 60 if every_minutes else None
        self.guard = guard
        self.saved_step: Optional[int] = None
        self._saved_at = time.monotonic()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._saved_at = time.monotonic()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step
        if step == self.saved_step:
            return
        due = bool(self.every_n_steps) and step % self.every_n_steps == 0
        if self.every_s is not None:
            elapsed = trainer.strategy.broadcast(time.monotonic() - self._saved_at, src=0)
            due = due or elapsed >= self.every_s
        if due:
            self.save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer)  # even at a step already saved: the epoch is now complete

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step != self.saved_step:
            self.save(trainer)  # stopped mid-epoch (max_time, max_steps)

    def save(self, trainer: L.Trainer) -> None:
        if trainer.fast_dev_run or trainer.sanity_checking:
            return
        if self.guard is not None:
            self.guard.check(trainer)
        trainer.save_checkpoint(self.path, weights_only=False)
        self.saved_step = trainer.global_step
        self._saved_at = time.monotonic()


class MetricsSnapshot(L.Callback):
    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}

    def _take(self, trainer: L.Trainer) -> None:
        for name, value in trainer.callback_metrics.items():
            try:
                self.metrics[name] = float(value)
            except (TypeError, ValueError):
                continue

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._take(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._take(trainer)

    def scalars(self) -> dict[str, float]:
        return {name: round(value, 6) for name, value in sorted(self.metrics.items())
                if not name.endswith(("_step", "_epoch")) and math.isfinite(value)}


def request_stop(trainer: L.Trainer) -> None:
    """Raise Lightning's SIGTERM flag, so the run stops at the next batch as preempted.

    Lightning 2.6 (``lightning>=2.6,<2.7``) reads the flag through the public
    ``Trainer.received_sigterm`` but has no public setter: this sets the private
    ``trainer._signal_connector.received_sigterm`` (docs/internals.md). When that is not
    there, the trainer is asked to stop with the public ``trainer.should_stop`` instead:
    the run ends at the next step as a normal, shorter run (last.ckpt written), not as
    preempted.
    """
    try:
        connector = trainer._signal_connector
        if not hasattr(connector, "received_sigterm"):
            raise AttributeError("received_sigterm")
        connector.received_sigterm = True
    except Exception:
        log.warning("This Lightning has no SIGTERM flag to raise: stopping at the next step instead "
                    "(the run ends as a normal run, not as preempted).")
        trainer.should_stop = True


class GangSigterm(L.Callback):
    """SIGTERM that a whole gang acts on together, at the same batch.

    Lightning 2.6's own SIGTERM handler runs a ``dist.broadcast`` inside the signal
    handler, i.e. in the middle of whatever collective the rank was in: with torchrun
    signalling every rank at slightly different moments, the gang deadlocked until
    SIGKILL (observed: 30 s, exit 137, no checkpoint). Here the handler only notes the
    signal; at each batch start the ranks all-reduce that note, and every rank then
    raises Lightning's flag at once, so Lightning's per-batch broadcast stops them at the
    same batch and the preemption checkpoint is written by the whole gang. A SIGTERM that
    reached only one rank (one pod of a PyTorchJob) stops the gang too. In one process
    the flag is raised directly.
    """

    def __init__(self) -> None:
        self.pending = False
        self._installed = False

    def _install(self, trainer: L.Trainer) -> None:
        if self._installed:
            return
        self._installed = True
        gang = trainer.world_size > 1

        def note(signum: int, _frame: Any) -> None:
            if not self.pending:
                log.info("Received SIGTERM on rank %d: stopping at the next batch to checkpoint.",
                         trainer.global_rank)
            self.pending = True
            if not gang:
                request_stop(trainer)

        if threading.current_thread() is threading.main_thread():  # a Ray Tune trial runs in a thread
            signal.signal(signal.SIGTERM, note)  # Lightning restores the previous handler at teardown

    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install(trainer)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install(trainer)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if trainer.world_size <= 1:
            return
        if trainer.strategy.reduce_boolean_decision(self.pending, all=False):
            request_stop(trainer)


class PreemptionCheckpoint(L.Callback):
    def __init__(self, last_path: Path) -> None:
        self.last_path = last_path
        self.saved: Optional[Path] = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        trainer.save_checkpoint(self.last_path, weights_only=False)
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


class RunningRecord(L.Callback):
    """Rank 0 records the running attempt when training starts and at each epoch's end
    (``write(epochs_completed)``: its metrics, step, checkpoints and tracking run in
    ``summary.json``), so that ``aegis status`` of a running job shows them. A write costs
    about 2 ms (two fsyncs): epochs shorter than ``min_interval_s`` are recorded at most that
    often, the last state always by the attempt's own end."""

    min_interval_s = 1.0

    def __init__(self, write: Callable[[int], Any]) -> None:
        self.write = write
        self._written = 0.0

    def _write(self, epochs_completed: int) -> None:
        self._written = time.monotonic()
        self.write(epochs_completed)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self._write(trainer.current_epoch)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and time.monotonic() - self._written >= self.min_interval_s:
            self._write(trainer.current_epoch + 1)


class EndStartupGCPause(L.Callback):
    def __init__(self, startup: StartupGCPause) -> None:
        self.startup = startup

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.startup.end()


class StepTiming(L.Callback):
    """Wall time and this process's CPU time (``time.process_time``) over the training phase:
    on a machine shared with other work the CPU time per step is what stays comparable."""

    def __init__(self) -> None:
        self.first_step_unix: Optional[float] = None
        self.first_step_global: int = 0
        self.first_step_cpu: float = 0.0
        self.end_unix: Optional[float] = None
        self.end_global: int = 0
        self.end_cpu: float = 0.0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if self.first_step_unix is None:
            self.first_step_unix = time.time()
            self.first_step_cpu = time.process_time()
            self.first_step_global = trainer.global_step

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.end_unix = time.time()
        self.end_cpu = time.process_time()
        self.end_global = trainer.global_step

    def as_dict(self) -> dict[str, Any]:
        steps = self.end_global - self.first_step_global
        span = (self.end_unix or 0.0) - (self.first_step_unix or 0.0)
        cpu = self.end_cpu - self.first_step_cpu
        return {
            "first_step_unix": self.first_step_unix,
            "train_steps": steps,
            "train_seconds": round(span, 4) if self.end_unix else None,
            "train_steps_per_s": round(steps / span, 3) if self.end_unix and span > 0 else None,
            "train_cpu_seconds": round(cpu, 4) if self.end_unix else None,
            "train_steps_per_cpu_s": round(steps / cpu, 3) if self.end_unix and cpu > 0 else None,
        }
