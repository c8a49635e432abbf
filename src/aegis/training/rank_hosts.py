"""Every rank's host (and a pod's node), gathered once when fit starts, for rank 0's lineage.

Rank 0 records the lineage before the process group exists, so it knows only its own host.
When fit sets up, the group is up: one ``all_gather_object`` of a few bytes per rank tells
rank 0 where each rank runs (``aegis.launch.hosts``). One process (world size 1) gathers
nothing. A failure here is logged and never fails the run.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from lightning.pytorch.callbacks import Callback

from aegis.training.lineage import this_host

log = logging.getLogger("aegis.training")


class RankHosts(Callback):
    """Gathers ``this_host()`` of every rank at fit's setup; rank 0 passes them to ``record``."""

    def __init__(self, record: Optional[Callable[[list[dict[str, Any]]], None]]) -> None:
        self.record = record

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage != "fit":
            return
        mine = this_host()
        everyone: list[Any] = [mine]
        if trainer.world_size > 1:
            import torch.distributed as dist

            if not (dist.is_available() and dist.is_initialized()):
                return
            everyone = [None] * dist.get_world_size()
            dist.all_gather_object(everyone, mine)
        if trainer.global_rank == 0 and self.record is not None:
            try:
                self.record(everyone)
            except Exception as exc:  # the hosts are lineage, not training
                log.warning("Could not record where the ranks run: %s", exc)
