"""One training run: build, resume, fit, test, record. Every rank runs this.

Rank 0 alone writes the resolved config, tracking and ``summary.json``; checkpoints
go through Lightning, which writes them from rank 0. The outcome's exit code is the
process's: 0 when done, 143 (128 + SIGTERM) when preempted after saving ``last.ckpt``.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from aegis.config.resolvers import global_rank
from aegis.launch.base import RunContext
from aegis.training.files import write_json
from aegis.training.startup_gc import StartupGCPause

log = logging.getLogger("aegis.training")

PREEMPTED_EXIT_CODE = 143
SUMMARY_FILE = "summary.json"
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


def resume_checkpoint(resume: str, checkpoint_dir: Path) -> Optional[Path]:
    if resume == "never":
        return None
    if resume == "auto":
        last = checkpoint_dir / "last.ckpt"
        return last if last.is_file() else None
    return Path(resume).resolve()


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


def _progress_mode(progress: Any) -> str:
    mode = str(getattr(progress, "value", progress))
    if mode == "auto":
        return "bar" if sys.stdout.isatty() else "lines"
    return mode


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
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _train(cfg: DictConfig, ctx: RunContext, startup: StartupGCPause, callbacks: Sequence[Any] = ()) -> Outcome:
    """One run; ``callbacks`` are extra Lightning callbacks (a search's metric reporter).
    Imports, building and fit's set-up run with the collector paused until training starts."""
    for pattern in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)

    import lightning.pytorch as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from aegis.training.callbacks import (AtomicCheckpointIO, EndStartupGCPause, EpochLines, PreemptionCheckpoint,
                                          StepTiming)
    from aegis.training.components import build, check_signature
    from aegis.training.topology import resolve_topology
    from aegis.training.tracking import build_tracking

    _one_log_stream()

    started = time.time()
    run_dir = ctx.run_dir
    checkpoint_dir = run_dir / "checkpoints"
    rank_zero = global_rank() == 0
    resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)

    for key in ("data", "model"):
        check_signature(cfg[key], key)
    topology = resolve_topology(cfg.strategy)
    resume_from = resume_checkpoint(cfg.resume, checkpoint_dir)

    if cfg.seed is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build(cfg.data, "data")
    model = build(cfg.model, "model")

    paths_root = Path(cfg.paths.root).resolve()
    tracking = build_tracking(cfg, run_dir, ctx.run_id, paths_root, continuing=cfg.resume != "never",
                              rank_zero=rank_zero)
    if rank_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(resolved), run_dir / "config.yaml")
        tracking.start()
        tracking.log_config(flatten(resolved))

    fast_dev_run = bool(cfg.trainer.get("fast_dev_run"))
    checkpointing = ModelCheckpoint(
        dirpath=str(checkpoint_dir),
        filename="best-epoch{epoch:03d}",
        auto_insert_metric_name=False,
        monitor=cfg.checkpoint.monitor,
        mode=str(getattr(cfg.checkpoint.mode, "value", cfg.checkpoint.mode)),
        save_top_k=cfg.checkpoint.save_top_k,
        save_last=True,
        enable_version_counter=False,
    )
    preemption = PreemptionCheckpoint(checkpoint_dir / "last.ckpt")
    timing = StepTiming()
    trainer_callbacks: list[Any] = [EndStartupGCPause(startup), checkpointing, preemption, timing, *callbacks]
    progress = _progress_mode(cfg.progress)
    if progress == "lines":
        trainer_callbacks.append(EpochLines())

    trainer = build(
        cfg.trainer,
        "trainer",
        devices=topology.devices,
        num_nodes=topology.num_nodes,
        strategy=topology.strategy,
        callbacks=trainer_callbacks,
        logger=tracking.lightning_logger,
        plugins=[AtomicCheckpointIO(), *topology.plugins],
        default_root_dir=str(run_dir),
        enable_progress_bar=progress == "bar",
        enable_checkpointing=True,
    )

    summary: dict[str, Any] = {
        "run_id": ctx.run_id,
        "run_dir": str(run_dir),
        "started_at": started,
        "resumed_from": str(resume_from) if resume_from else None,
        "world_size": trainer.world_size,
        "num_nodes": trainer.num_nodes,
        "devices_per_node": topology.devices,
        "accelerator": type(trainer.accelerator).__name__.replace("Accelerator", "").lower(),
    }
    if resume_from:
        log.info("Resuming from %s", resume_from)

    def record(status: str, **extra: Any) -> dict[str, Any]:
        summary.update(
            status=status,
            epochs_completed=trainer.current_epoch,
            global_step=trainer.global_step,
            checkpoints={
                "dir": str(checkpoint_dir),
                "last": str(checkpoint_dir / "last.ckpt") if (checkpoint_dir / "last.ckpt").exists() else None,
                "best": checkpointing.best_model_path or None,
                "best_score": float(checkpointing.best_model_score) if checkpointing.best_model_score is not None else None,
                "monitor": cfg.checkpoint.monitor,
            },
            tracking=tracking.describe(),
            timing={**timing.as_dict(), "total_seconds": round(time.time() - started, 3)},
            finished_at=time.time(),
            **extra,
        )
        if rank_zero:
            write_json(run_dir / SUMMARY_FILE, summary)
        return summary

    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None)
    except SIGTERMException:
        record("preempted", metrics=_scalars(trainer.callback_metrics))
        return Outcome(PREEMPTED_EXIT_CODE, summary)
    except SystemExit as exc:
        if exc.code not in (0, None):
            record("failed", error=f"SystemExit: {exc.code}", metrics=_scalars(trainer.callback_metrics))
            raise
        # A clean exit mid-fit: a search (Ray Tune's ASHA) stopped this trial early.
        record("stopped", metrics=_scalars(trainer.callback_metrics))
        raise
    except BaseException as exc:
        record("failed", error=f"{type(exc).__name__}: {exc}", metrics=_scalars(trainer.callback_metrics))
        raise

    metrics = _scalars(trainer.callback_metrics)
    if cfg.test_after_fit:
        best = checkpointing.best_model_path
        results = trainer.test(model, datamodule=datamodule, ckpt_path=best if best and not fast_dev_run else None,
                               verbose=False)
        metrics.update(_scalars(results[0] if results else {}))

    if rank_zero:
        if cfg.logger.name == "mlflow":
            if cfg.logger.log_checkpoint:
                tracking.log_checkpoint(checkpointing.best_model_path)
            if cfg.logger.register_model and checkpointing.best_model_path:
                best_model = _load_best(type(model), checkpointing.best_model_path, model)
                tracking.register_model(best_model, cfg.logger.registered_model_name)
    summary = record("completed", metrics=metrics)
    if rank_zero:
        shown = " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k.startswith(("test/", "val/")))
        log.info("Done: %s; run dir %s", shown, run_dir)
    return Outcome(0, summary)


def _load_best(cls: type, path: str, fallback: Any) -> Any:
    """The best checkpoint's weights in a fresh module (no trainer attached) for the registry."""
    try:
        return cls.load_from_checkpoint(path, map_location="cpu")
    except Exception as exc:  # a user's module that cannot rebuild from its hparams
        log.warning("Registering the in-memory model: %s cannot be rebuilt from %s (%s)", cls.__name__, path, exc)
        return fallback
