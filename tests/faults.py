"""Models that fail on purpose, for the tests of what a failure leaves behind.

Used as ``model._target_=faults.<Class>`` with ``tests/`` on PYTHONPATH.
"""

from __future__ import annotations

import os

from aegis.training.models import MLPClassifier


class DiesOnRankOne(MLPClassifier):
    """Rank 1 of a gang vanishes at its fourth step, as a process the OOM killer took."""

    def training_step(self, batch, batch_idx):
        if self.global_rank == 1 and self.global_step == 3:
            os._exit(1)
        return super().training_step(batch, batch_idx)
