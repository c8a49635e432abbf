"""Ray Tune's record of a trial's results (``progress.csv`` in its dir under the sweep dir), as
both the driver (ASHA's replayed rungs) and a restored trial (where it continues) read it.
Plain csv: neither Ray nor Lightning is imported for it."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional

EPOCH = "epoch"  # what a trial reports as its epoch index, 1-based (aegis.tune.reporting)
PROGRESS_FILE = "progress.csv"


def progress_rows(trial_dir: Optional[str]) -> list[dict[str, str]]:
    """The rows Ray Tune wrote for the trial in ``trial_dir``; none for a new trial, a trial dir
    this process cannot see, or a file it cannot read."""
    path = Path(trial_dir) / PROGRESS_FILE if trial_dir else None
    if path is None or not path.is_file():
        return []
    try:
        with path.open(newline="") as handle:
            return list(csv.DictReader(handle))
    except OSError:
        return []


def row_epoch(row: dict[str, str]) -> Optional[int]:
    """The epoch index of one result row, or None when it has none."""
    try:
        return int(float(row.get(EPOCH) or "nan"))
    except (TypeError, ValueError):  # ValueError also for NaN's int()
        return None
