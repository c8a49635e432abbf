"""``launcher=local``: train in this process (CPU or GPU, or one rank of a gang).

A run started here is a job like any other: ``job.json`` names this process, so
``aegis status/logs/cancel`` find it from another terminal. A process that a parent
launcher supervises (a torchrun gang it started, a pod) leaves ``job.json`` to that
parent, which sets ``AEGIS_SUPERVISED``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from omegaconf import DictConfig

from aegis.config.resolvers import global_rank
from aegis.launch.base import Launcher, RunContext
from aegis.core.lifecycle import SUPERVISED_ENV
from aegis.launch.process import ProcessJobs, claim_run_dir

if TYPE_CHECKING:
    from aegis.errors import Problems


@dataclass
class LocalPlan:
    cfg: DictConfig
    ctx: RunContext


class LocalLauncher(ProcessJobs, Launcher[LocalPlan, int]):
    name = "local"
    trains_here = True
    search_runs = "here"

    def world_size(self, cfg: DictConfig) -> Optional[int]:
        strategy = cfg.strategy  # one process; a ddp strategy's devices (Lightning spawns them here)
        if strategy.get("name") != "ddp":
            return 1
        return (strategy.get("devices") or 1) * (strategy.get("num_nodes") or 1)

    def check(self, cfg: DictConfig, found: "Problems") -> None:
        from aegis.launch.local.checks import check

        check(cfg, found)

    def render(self, cfg: DictConfig, ctx: RunContext) -> LocalPlan:
        return LocalPlan(cfg, ctx)

    def submit(self, rendered: LocalPlan) -> int:
        # Imported here: this is where torch and lightning are first needed.
        from aegis.training.run import train

        from aegis.core.rank_notes import note_exit, note_start

        rank = global_rank()
        if rank == 0 and not os.environ.get(SUPERVISED_ENV):
            claim_run_dir(self.name, rendered.ctx.run_dir, rendered.ctx.run_id, os.getpid())
        note_start(rank)  # for a gang's supervisor: how each rank ended decides the gang's exit code
        try:
            outcome = train(rendered.cfg, rendered.ctx)
        except BaseException as exc:
            code = exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else 1
            note_exit(rank, code, "crashed" if code else "stopped")
            if code and not isinstance(exc, KeyboardInterrupt) and self._report(rendered.ctx.run_dir, rank):
                return code  # the traceback, then the one paragraph: the last thing the user reads
            raise
        note_exit(rank, outcome.exit_code, str(outcome.summary.get("status", "")))
        return outcome.exit_code

    @staticmethod
    def _report(run_dir: Path, rank: int) -> bool:
        """A run on its own (no gang supervisor to do it): its traceback, then the failure's
        paragraph as the run recorded it in summary.json. False when there is none."""
        from aegis.failures.record import Failure
        from aegis.failures.report import print_paragraph
        from aegis.core.files import read_json

        if rank != 0 or os.environ.get(SUPERVISED_ENV):
            return False
        attempts = (read_json(run_dir / "summary.json") or {}).get("attempts") or [{}]
        failure = attempts[-1].get("failure")
        if not isinstance(failure, dict):
            return False
        from aegis.redact import print_exc

        print_exc()  # masked: an MLflow error quotes the URL it called, password included
        print_paragraph(Failure.from_dict(failure))
        return True

    def follow(self, handle: int) -> int:
        return handle

