"""One training run: build, resume, fit, test, record. Every rank runs this.

Rank 0 alone writes the resolved config, tracking and ``summary.json``; checkpoints
go through Lightning, which writes them from rank 0. The outcome's exit code is the
process's: 0 when done, 143 (128 + SIGTERM) when preempted after saving ``last.ckpt``.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from aegis.config.resolvers import global_rank
from aegis.core import logger_kind
from aegis.core.context import RunContext
from aegis.core.rank_notes import PREEMPTED_EXIT_CODE
from aegis.training.record import RunRecord
from aegis.training.signals import Preempted, SigtermOutsideFit
from aegis.training.startup_gc import StartupGCPause

if TYPE_CHECKING:
    from aegis.training.checkpoints import ResumeChoice

log = logging.getLogger("aegis.training")

NOISY_WARNINGS = (
    r".*does not have many workers.*",
    r".*smaller than the logging interval.*",
    r".*Checkpoint directory .* exists and is not empty.*",
    r".*You're resuming from a checkpoint that ended before the epoch ended.*",
    r".*Experiment logs directory .* exists and is not empty.*",
    r".*The dirpath has changed from.*",
    r".*Using `DistributedSampler` with the dataloaders.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
)


def _one_log_stream() -> None:
    """Lightning adds its own stderr handler to the ``lightning`` logger; where Hydra
    already configured the root logger, that prints every line twice."""
    if logging.getLogger().handlers:
        for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
            logger = logging.getLogger(name)
            for handler in list(logger.handlers):
                if type(handler) is logging.StreamHandler:
                    logger.removeHandler(handler)
            logger.propagate = True
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: not str(record.msg).startswith("💡 Tip")  # an advertisement, not a log line
    )


@dataclass
class Outcome:
    exit_code: int
    summary: dict[str, Any] = field(default_factory=dict)


def resume_checkpoint(resume: str, checkpoint_dir: Path, *, rank_zero: bool = True) -> "ResumeChoice":
    """Where this attempt continues from: for ``auto``, the newest intact checkpoint of the
    run dir (an unreadable one is moved aside with one warning line); an explicit path is
    used as given, and must be whole."""
    from aegis.training.checkpoints import CheckpointUnreadable, ResumeChoice, check_intact, choose_auto_resume

    if resume == "never":
        return ResumeChoice(None)
    if resume == "auto":
        choice = choose_auto_resume(checkpoint_dir, rank_zero=rank_zero)
        if choice.fell_back_from and rank_zero:
            source = choice.path.name if choice.path else "nothing (starting over)"
            log.warning("Unreadable checkpoint skipped: %s; resuming from %s.", "; ".join(choice.fell_back_from), source)
        return choice
    path = Path(resume).resolve()
    try:
        check_intact(path)
    except CheckpointUnreadable as why:
        raise RunFailed(f"resume={resume} cannot be resumed from: {why}.") from None
    return ResumeChoice(path)


class RunFailed(RuntimeError):
    """A failure the run explains in one sentence (no traceback), such as a resume source
    that is not a whole checkpoint. Exceptions of other modules opt in the same way, with
    ``explained = True``: a NaN loss, a full disk, a tracking store that cannot be used."""

    explained = True


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {name: round(float(value), 6) for name, value in sorted(metrics.items()) if not name.endswith(("_step", "_epoch"))}


def train(cfg: DictConfig, ctx: RunContext, callbacks: Sequence[Any] = ()) -> Outcome:
    try:
        with StartupGCPause() as startup:
            return _train(cfg, ctx, startup, callbacks)
    finally:
        _leave_process_group()


def _leave_process_group() -> None:
    """Tear the gang's process group down while the interpreter still runs: left to
    interpreter shutdown, gloo's threads can abort a rank that finished its work
    ('terminate called without an active exception', SIGABRT), and torchrun's agents
    then report the whole gang failed."""
    dist = sys.modules.get("torch.distributed")  # never import here: a SIGTERM may have cut torch's import short
    if dist is not None and getattr(dist, "is_available", lambda: False)() and dist.is_initialized():
        dist.destroy_process_group()


def _train(cfg: DictConfig, ctx: RunContext, startup: StartupGCPause, callbacks: Sequence[Any] = ()) -> Outcome:
    """One attempt; ``callbacks`` are extra Lightning callbacks (a search's metric reporter).
    Imports, building and fit's set-up run with the collector paused until training starts.

    From the moment the attempt starts, every exit leaves ``summary.json`` saying how it
    ended and why (``aegis.training.record``)."""
    for pattern in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)

    run_dir = ctx.run_dir
    checkpoint_dir = run_dir / "checkpoints"
    rank_zero = global_rank() == 0
    with SigtermOutsideFit() as sigterm:  # a SIGTERM from here on is held until the attempt can record it
        if rank_zero:
            run_dir.mkdir(parents=True, exist_ok=True)
        record = RunRecord(run_dir, rank_zero)
        record.update(run_id=ctx.run_id, run_dir=str(run_dir))
        attempt = _Attempt(cfg, ctx, record, checkpoint_dir, rank_zero, sigterm)
        try:
            record.write("running")
            sigterm.arm()
            return attempt.run(startup, callbacks)
        except BaseException as exc:
            return attempt.fail(exc)


class _Attempt:
    """The state one attempt builds up, so that its record can be written from any point."""

    def __init__(self, cfg: DictConfig, ctx: RunContext, record: RunRecord, checkpoint_dir: Path,
                 rank_zero: bool, sigterm: SigtermOutsideFit) -> None:
        self.cfg, self.ctx, self.record = cfg, ctx, record
        self.checkpoint_dir = checkpoint_dir
        self.rank_zero = rank_zero
        self.trainer: Any = None
        self.best: Any = None  # the ModelCheckpoint of the monitored metric
        self.tracking: Any = None
        self.timing: Any = None
        self.snapshot: Any = None
        self.sigterm = sigterm

    def run(self, startup: StartupGCPause, callbacks: Sequence[Any]) -> Outcome:
        """The attempt as steps, in the order they take effect; each step leaves on ``self``
        what ``fail()`` records, so a failure at any step says how far the attempt got."""
        self._prepare_process()
        resolved = self._prepare_config()
        topology = self._topology()
        self._sweep_stale_temp_files()
        resume = self._resume_point()
        datamodule, model = self._build_components()
        self._start_tracking(resolved, resume)
        trainer_callbacks = self._callbacks(startup, callbacks)
        trainer = self._trainer(topology, trainer_callbacks)
        self._announce(trainer, resume)
        self._join_restarted_gang(trainer)
        stopped = self._fit(trainer, model, datamodule, resume)
        if stopped is not None:
            return stopped
        metrics = self._test(trainer, model, datamodule)
        self._register(model)
        return self._finish(metrics)

    def _prepare_process(self) -> None:
        """Lightning imported here, not at module import, its log lines printed once, and its
        per-step fast paths installed before anything is built."""
        import importlib

        importlib.import_module("lightning.pytorch")  # adds its own log handler, which _one_log_stream removes

        _one_log_stream()
        from aegis.training.log_fastpath import install as install_log_fastpath

        install_log_fastpath()  # self.log's device move, skipped when there is nothing to move
        from aegis.training.hook_fastpath import install as install_hook_fastpath

        install_hook_fastpath()  # per-step callback hooks: only the callbacks that implement them

    def _prepare_config(self) -> dict[str, Any]:
        """Every ``_target_`` checked and the data completed before anything is called; returns
        the resolved config as it is saved and tracked."""
        from aegis.training.components import check_targets
        from aegis.training.datasets import complete_from_data

        check_targets(self.cfg)  # every _target_ a class of its kind before any is called (or data fetched)
        complete_from_data(self.cfg)  # data with a source: cached once, its classes/shape filled in for the model
        return OmegaConf.to_container(self.cfg, resolve=True, enum_to_str=True)  # type: ignore[return-value]

    def _topology(self) -> Any:
        """Data and model arguments checked against their classes, then where the ranks run
        (devices, nodes, strategy), all before anything is built."""
        from aegis.training.components import check_signature
        from aegis.training.topology import resolve_topology

        for key in ("data", "model"):
            check_signature(self.cfg[key], key)
        return resolve_topology(self.cfg.strategy)

    def _sweep_stale_temp_files(self) -> None:
        """Rank 0 removes the temp files of a process killed mid-write, before resuming reads."""
        from aegis.training.checkpoints import sweep_stale_temp_files

        if self.rank_zero:
            for stale in sweep_stale_temp_files([self.checkpoint_dir, self.ctx.run_dir]):
                log.info("Removed %s, left by a process that was killed while writing it.", stale)

    def _resume_point(self) -> "ResumeChoice":
        """Where fit continues from, recorded (with any checkpoint skipped) before building."""
        resume = resume_checkpoint(self.cfg.resume, self.checkpoint_dir, rank_zero=self.rank_zero)
        self.record.update(resumed_from=str(resume.path) if resume.path else None,
                           resume_fallback=list(resume.fell_back_from) or None)
        return resume

    def _build_components(self) -> tuple[Any, Any]:
        """The seed set first, then the datamodule and the model, built from their config."""
        import lightning.pytorch as L

        from aegis.training.components import build

        if self.cfg.seed is not None:
            L.seed_everything(self.cfg.seed, workers=True, verbose=False)
        return build(self.cfg.data, "data"), build(self.cfg.model, "model")

    def _start_tracking(self, resolved: dict[str, Any], resume: "ResumeChoice") -> None:
        """The tracking built on every rank (its logger and lineage callbacks); rank 0 alone
        saves ``config.yaml``, starts the tracked run and logs the config."""
        from aegis.training.tracking import build_tracking

        cfg, run_dir = self.cfg, self.ctx.run_dir
        self.tracking = build_tracking(cfg, run_dir, self.ctx.run_id, Path(cfg.paths.root).resolve(),
                                       continuing=cfg.resume != "never", rank_zero=self.rank_zero,
                                       starting_over=bool(resume.fell_back_from) and resume.path is None)
        if self.rank_zero:
            OmegaConf.save(OmegaConf.create(resolved), run_dir / "config.yaml")
            self.tracking.start()
            self.tracking.log_config(flatten(resolved))

    def _callbacks(self, startup: StartupGCPause, extra: Sequence[Any]) -> list[Any]:
        """Aegis's stateful callbacks, set on ``self`` as they are made (the record reads them),
        then the whole list in Lightning's calling order (aegis.training.callback_list)."""
        from lightning.pytorch.callbacks import ModelCheckpoint

        from aegis.training.callback_list import trainer_callbacks
        from aegis.training.callbacks import (FiniteLossGuard, LastCheckpoint, MetricsSnapshot, PreemptionCheckpoint,
                                              StepTiming)
        from aegis.training.checkpoints import LAST

        cfg, checkpoint_dir = self.cfg, self.checkpoint_dir
        self.best = ModelCheckpoint(
            dirpath=str(checkpoint_dir),
            filename="best-epoch{epoch:03d}",
            auto_insert_metric_name=False,
            monitor=cfg.checkpoint.monitor,
            mode=str(getattr(cfg.checkpoint.mode, "value", cfg.checkpoint.mode)),
            save_top_k=cfg.checkpoint.save_top_k,
            save_last=False,  # LastCheckpoint writes last.ckpt on its own schedule
            enable_version_counter=False,
        )
        guard = FiniteLossGuard(check_every_n_steps=cfg.trainer.get("log_every_n_steps") or 50)
        last = LastCheckpoint(checkpoint_dir / LAST, every_n_steps=cfg.checkpoint.get("every_n_steps"),
                              every_minutes=cfg.checkpoint.get("every_minutes"), guard=guard)
        preemption = PreemptionCheckpoint(checkpoint_dir / LAST)
        self.timing = StepTiming()
        self.snapshot = MetricsSnapshot()
        return trainer_callbacks(cfg, self.ctx, rank_zero=self.rank_zero, startup=startup,
                                 own=[guard, self.snapshot, self.best, last, preemption, self.timing],
                                 running=self._running, extra=extra, tracking=self.tracking)

    def _trainer(self, topology: Any, callbacks: list[Any]) -> Any:
        """The Trainer on the resolved topology with atomic checkpoint writes; the record
        then says the world it runs in."""
        from aegis.training.callback_list import progress_mode
        from aegis.training.checkpoints import AtomicCheckpointIO
        from aegis.training.components import build

        self.trainer = trainer = build(
            self.cfg.trainer,
            "trainer",
            devices=topology.devices,
            num_nodes=topology.num_nodes,
            strategy=topology.strategy,
            callbacks=callbacks,
            logger=self.tracking.lightning_logger,
            plugins=[AtomicCheckpointIO(), *topology.plugins],
            default_root_dir=str(self.ctx.run_dir),
            enable_progress_bar=progress_mode(self.cfg.progress) == "bar",
            enable_checkpointing=True,
        )
        self.record.update(
            world_size=trainer.world_size,
            num_nodes=trainer.num_nodes,
            devices_per_node=topology.devices,
            accelerator=type(trainer.accelerator).__name__.replace("Accelerator", "").lower(),
        )
        return trainer

    def _announce(self, trainer: Any, resume: "ResumeChoice") -> None:
        """Rank 0 logs the run's lineage (it needs the world size); every rank says what it resumes."""
        if self.rank_zero:
            self.tracking.log_lineage(self.cfg, self.ctx, trainer.world_size, trainer.num_nodes)
        if resume.path:
            log.info("Resuming from %s", resume.path)

    def _join_restarted_gang(self, trainer: Any) -> None:
        """A torchrun restart of a DDP gang meets on its own store keys, not the last attempt's."""
        cfg = self.cfg
        if cfg.strategy.name == "ddp" and trainer.world_size > 1:
            from datetime import timedelta

            from aegis.training.restart_store import join_restarted_gang

            join_restarted_gang(cfg.strategy.get("process_group_backend"),
                                trainer.strategy.root_device.type == "cuda", timedelta(seconds=cfg.strategy.timeout_s))

    def _fit(self, trainer: Any, model: Any, datamodule: Any, resume: "ResumeChoice") -> Optional[Outcome]:
        """Fit with SIGTERM turned into a stop at the next batch; returns the preempted (or
        cancelled) outcome when it stopped there, None when fit ran to its end."""
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        try:
            with self.sigterm.fitting():
                trainer.fit(model, datamodule=datamodule, ckpt_path=str(resume.path) if resume.path else None)
        except SIGTERMException:
            self._write(self._stopped_by(), metrics=self.snapshot.scalars())
            return Outcome(PREEMPTED_EXIT_CODE, dict(self.record.current))
        if trainer.received_sigterm:  # too late in fit to stop at a batch: last.ckpt is final anyway
            self.sigterm.received_during_fit()
        return None

    def _test(self, trainer: Any, model: Any, datamodule: Any) -> dict[str, float]:
        """Fit's last metrics, then (with ``test_after_fit``) the test split on the best checkpoint."""
        metrics = _scalars(trainer.callback_metrics)
        if self.cfg.test_after_fit:
            with self.sigterm.phase_of("test"):
                best = self._existing(self.best.best_model_path)
                fast_dev_run = bool(self.cfg.trainer.get("fast_dev_run"))
                results = trainer.test(model, datamodule=datamodule,
                                       ckpt_path=best if best and not fast_dev_run else None, verbose=False)
                metrics.update(_scalars(results[0] if results else {}))
        return metrics

    def _register(self, model: Any) -> None:
        """Aegis's MLflow layer on rank 0: the best checkpoint as an artifact, the model in the registry."""
        cfg, tracking = self.cfg, self.tracking
        if self.rank_zero and logger_kind.of(cfg.logger).mlflow:
            with self.sigterm.finishing("model registration"):
                best = self._existing(self.best.best_model_path)
                if cfg.logger.log_checkpoint:
                    tracking.log_checkpoint(best)
                if cfg.logger.register_model and best:
                    tracking.register_model(_load_best(type(model), best, model), cfg.logger.registered_model_name,
                                            cfg.logger.get("registry_alias"))

    def _finish(self, metrics: dict[str, float]) -> Outcome:
        """The completed record (with any SIGTERM that came too late to stop on) and one Done line."""
        extra = {"sigterm": self.sigterm.outcome} if self.sigterm.outcome else {}
        summary = self._write("completed", metrics=metrics, **extra)
        if self.rank_zero:
            shown = " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k.startswith(("test/", "val/")))
            log.info("Done: %s; run dir %s", shown, self.ctx.run_dir)
        return Outcome(0, summary)

    def _stopped_by(self) -> str:
        """A SIGTERM that ``aegis cancel`` sent (it leaves a marker first) is a cancellation;
        any other is a preemption. Both saved ``last.ckpt`` and resume the same way."""
        from aegis.core.lifecycle import CANCEL_FILE

        return "cancelled" if (self.ctx.run_dir / CANCEL_FILE).exists() else "preempted"

    def _epochs_at_exit(self) -> dict[str, Any]:
        """Epochs completed when fit was left from inside an epoch-end hook (a search's report,
        where Ray Tune stops a trial): Lightning counts an epoch only after its end hooks, so
        ``current_epoch`` is one short there."""
        trainer = self.trainer
        if trainer is None:
            return {}
        at_end = bool(getattr(trainer.fit_loop.epoch_loop.batch_progress, "is_last_batch", False))
        return {"epochs_completed": trainer.current_epoch + (1 if at_end else 0)}

    @staticmethod
    def _existing(path: Optional[str]) -> Optional[str]:
        return path if path and Path(path).is_file() else None

    def _running(self, epochs_completed: int) -> None:
        """The running attempt as far as it got (``aegis status`` reads it while the run runs)."""
        self._write("running", metrics=self.snapshot.scalars(), epochs_completed=epochs_completed)

    def _write(self, status: str, **extra: Any) -> dict[str, Any]:
        trainer, best, last = self.trainer, self.best, self.checkpoint_dir / "last.ckpt"
        best_path = self._existing(best.best_model_path) if best is not None else None
        fields: dict[str, Any] = {}
        if trainer is not None:
            fields.update(epochs_completed=trainer.current_epoch, global_step=trainer.global_step)
        fields.update(extra)
        fields["checkpoints"] = {
            "dir": str(self.checkpoint_dir),
            "last": str(last) if last.is_file() else None,
            "best": best_path,
            "best_score": float(best.best_model_score) if best_path and best.best_model_score is not None else None,
            "monitor": self.cfg.checkpoint.monitor,
        }
        if self.tracking is not None:
            fields["tracking"] = self.tracking.describe()
        if self.timing is not None:
            fields["timing"] = {**self.timing.as_dict(),
                                "total_seconds": round(time.time() - self.record.current["started_at"], 3)}
        return self.record.write(status, **fields)

    def fail(self, exc: BaseException) -> Outcome:
        """Record how the attempt ended; a failure Aegis can explain becomes one error line
        and exit 1, anything else is re-raised for its traceback."""
        metrics = self.snapshot.scalars() if self.snapshot is not None else {}
        if isinstance(exc, Preempted):
            extra = {"sigterm": self.sigterm.outcome} if self.sigterm.outcome else {}
            self._write(self._stopped_by(), cause=str(exc), metrics=metrics, **extra)
            if self.rank_zero:
                log.warning("Preempted (%s); re-run with the same run dir to resume.", exc)
            return Outcome(PREEMPTED_EXIT_CODE, dict(self.record.current))
        if _is_peer_failure(exc):
            # Not this rank's fault: exit retryable (143), so that a scheduler restarting on
            # signal codes restarts the gang, which resumes from last.ckpt.
            cause = failure_cause(exc)
            self._write("failed", error=f"{type(exc).__name__}: {exc}"[:2000], cause=cause, retryable=True,
                        metrics=metrics, failure=self._failure(exc, cause, PREEMPTED_EXIT_CODE), unless_explained=True)
            log.error("Run stopped: %s; exiting %d (retryable): the restarted gang resumes from last.ckpt.",
                      cause, PREEMPTED_EXIT_CODE)
            return Outcome(PREEMPTED_EXIT_CODE, dict(self.record.current))
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            # A clean exit mid-fit: a search (Ray Tune's ASHA) stopped this trial early. (The
            # search's driver renames it "interrupted" when the search itself was interrupted.)
            self._write("stopped", metrics=metrics, **self._epochs_at_exit())
            raise exc
        cause = failure_cause(exc)
        code = exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else 1
        self._write("failed", error=f"{type(exc).__name__}: {exc}"[:2000], cause=cause, metrics=metrics,
                    failure=self._failure(exc, cause, code))
        if _explained(exc):
            if self.rank_zero:
                log.error("Run failed: %s Record: %s", cause if cause.endswith(".") else f"{cause}.", self.record.path)
            return Outcome(1, dict(self.record.current))
        raise exc

    def _failure(self, exc: BaseException, cause: str, exit_code: int) -> dict[str, Any]:
        """This rank's account of its failure, also left for torchrun and the gang's supervisor
        (aegis.failures.rank); a run with no supervisor tags its MLflow run itself."""
        from aegis.config.host import in_slurm_gang
        from aegis.config.resolvers import in_torchrun_gang
        from aegis.core.rank_notes import NOTES_ENV
        from aegis.failures.rank import failure_of, note_failure, write_error_file

        rank = global_rank() if in_torchrun_gang() or in_slurm_gang() else None
        failure = failure_of(exc, cause, rank, exit_code)
        write_error_file(exc, failure)
        if rank is not None:
            note_failure(rank, failure)
        if self.rank_zero and not os.environ.get(NOTES_ENV):
            from aegis.failures.report import tag_run

            tag_run(self.ctx.run_dir, failure)
        return failure.as_dict()


def _explained(exc: BaseException) -> bool:
    return bool(getattr(exc, "explained", False))


def failure_cause(exc: BaseException) -> str:
    """One sentence for the record: the cause in the operator's words where it is known."""
    from aegis.training.checkpoints import CheckpointWriteError, describe_write_failure

    if isinstance(exc, CheckpointWriteError):
        return str(exc)
    inner: Optional[BaseException] = exc
    while inner is not None:
        if isinstance(inner, OSError) and inner.errno == errno.ENOSPC:
            return describe_write_failure(Path(getattr(inner, "filename", None) or "."), inner)
        inner = inner.__cause__ or inner.__context__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if _is_peer_failure(exc):
        from aegis.failures.rank import is_collective_timeout

        if is_collective_timeout(text):
            return f"a collective timed out waiting for another rank of the gang (this rank saw: {text})"
        return f"another rank of the gang stopped (this rank saw: {text})"
    if isinstance(exc, SystemExit):
        return f"exited with code {exc.code}"
    return text


def _is_peer_failure(exc: BaseException) -> bool:
    from aegis.failures.rank import is_collective_timeout

    words = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "NCCL communicator was aborted",
             "DistNetworkError", "DistBackendError")
    text = f"{type(exc).__name__}: {exc}"
    return any(w in text for w in words) or is_collective_timeout(text)


def _load_best(cls: type, path: str, fallback: Any) -> Any:
    """The best checkpoint's weights in a fresh module (no trainer attached) for the registry."""
    try:
        return cls.load_from_checkpoint(path, map_location="cpu")
    except Exception as exc:  # a user's module that cannot rebuild from its hparams
        log.warning("Registering the in-memory model: %s cannot be rebuilt from %s (%s)", cls.__name__, path, exc)
        return fallback
