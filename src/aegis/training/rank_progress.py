"""Where a rank other than 0 was, in its own log file only.

Rank 0 prints the epoch lines; the other ranks log nothing after start-up, so when one of
them is killed outright (kill -9, the OOM killer) the gang's report quoted "Last lines of
rank 1's log" as "Initializing distributed: GLOBAL_RANK: 1 ..." alone. ``RankProgress``
writes one line per epoch start and end (and the step it reached) to that rank's log file
(``train.rank<N>.log``, Hydra's file handler), never to the terminal, which already shows
rank 0's lines: the report then shows how far the rank got.
"""

from __future__ import annotations

import logging
from typing import Any

from lightning.pytorch.callbacks import Callback

LOGGER = "aegis.rank"


def file_only_logger() -> logging.Logger:
    """A logger that writes to the root logger's log files and nothing else."""
    logger = logging.getLogger(LOGGER)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    for handler in files:
        if handler not in logger.handlers:
            logger.addHandler(handler)
    return logger


class RankProgress(Callback):
    """On ranks other than 0: the epoch and step each epoch starts and ends at, to the rank's log file."""

    def __init__(self) -> None:
        self._logger: Any = None

    def _say(self, trainer: Any, what: str) -> None:
        if trainer.global_rank == 0:
            return
        if self._logger is None:
            self._logger = file_only_logger()
        self._logger.info("rank %d: epoch %d %s (global step %d)", trainer.global_rank, trainer.current_epoch + 1, what,
                      trainer.global_step)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._say(trainer, "started")

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._say(trainer, "trained")
