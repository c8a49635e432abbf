"""The Trainer's callback list, in the order Lightning calls them.

Aegis's own callbacks come first (the startup collector's end, the gang's SIGTERM, the
loss guard, the metrics snapshot, checkpointing, timing, the running record, rank
progress), then a TrainJob's progress, then the caller's (a search's reporter), the
``callbacks`` group's and ``fault=...``'s; the progress display and model summary are
added only where no callback brings one, and the tracking's lineage callbacks last.
Order matters: hooks run in list order, so the run's own bookkeeping sees each step
before a user's callback can stop the run. Imports Lightning: call it from the
attempt only.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

from omegaconf import DictConfig

from aegis.core.context import RunContext


def progress_mode(progress: Any) -> str:
    """``progress=auto`` is a bar on a terminal and epoch lines otherwise (a log file)."""
    mode = str(getattr(progress, "value", progress))
    if mode == "auto":
        return "bar" if sys.stdout.isatty() else "lines"
    return mode


def trainer_callbacks(cfg: DictConfig, ctx: RunContext, *, rank_zero: bool, startup: Any,
                      own: Sequence[Any], running: Callable[[int], None], extra: Sequence[Any],
                      tracking: Any) -> list[Any]:
    """The list the Trainer is built with; ``own`` are the attempt's stateful callbacks
    (guard, snapshot, checkpointing, last, preemption, timing), made by the attempt so
    that its record can read them however far it got."""
    from lightning.pytorch.callbacks import ModelSummary, ProgressBar, TQDMProgressBar

    from aegis.training.callbacks import EndStartupGCPause, EpochLines, GangSigterm, RunningRecord
    from aegis.training.components import build_callbacks  # the `callbacks` group: after Aegis's own
    from aegis.training.faults import fault_callbacks  # fault=...: a failure on purpose, off by default
    from aegis.training.rank_progress import RankProgress  # ranks > 0: how far they got, in their own log
    from aegis.training.trainer_progress import trainer_progress_callbacks  # a TrainJob's status, if injected

    callbacks: list[Any] = [EndStartupGCPause(startup), GangSigterm(), *own, RunningRecord(running),
                            RankProgress(),
                            *trainer_progress_callbacks(rank_zero), *extra,
                            *build_callbacks(cfg.get("callbacks")), *fault_callbacks(cfg, ctx.run_dir)]
    progress = progress_mode(cfg.progress)
    if progress == "lines":
        callbacks.append(EpochLines())
    elif progress == "bar" and not any(isinstance(c, ProgressBar) for c in callbacks):
        # Lightning's default bar is Rich's wherever ``rich`` happens to be installed and
        # tqdm's elsewhere (the image): the same bar everywhere unless callbacks ask for one.
        callbacks.append(TQDMProgressBar())
    if cfg.trainer.get("enable_model_summary", True) and not any(isinstance(c, ModelSummary) for c in callbacks):
        callbacks.append(ModelSummary())  # the plain table, also where rich is installed
    callbacks += tracking.lineage_callbacks()  # where every rank runs, for rank 0's lineage
    return callbacks
