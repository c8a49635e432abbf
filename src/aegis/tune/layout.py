"""Where a search keeps what its driver, its trials and their records share.

The trial's number in its config, the files in a trial's run dir, and Ray's experiment dir
under the sweep dir are read by the driver (numbering, outcomes, reporting) and written by
the trial; keeping their names here lets each of those modules import this one instead of
each other, so none of them sits in an import ring with the trial that runs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

# The key of a trial's config that carries its number (its run dir ``<sweep dir>/<number>``,
# ``aegis.trial_number`` in MLflow, ``trial_number`` in best.yaml). The driver assigns it when
# Ray Tune adds the trial (``aegis.tune.numbering``), so every search algorithm gets the same
# numbers in the driver and the workers, and Ray Tune keeps it with the trial across a resume.
TRIAL_KEY = "__aegis_trial"
# Written into a trial's run dir before it trains: which Ray trial the dir belongs to.
TRIAL_FILE = "trial.json"
# In a trial's run dir: what Ray Tune restores the trial from (aegis.tune.reporting).
POINTER_DIR = "tune_checkpoint"
# Ray Tune's experiment (its trials' progress.csv, the searcher's state) under the sweep dir.
RAY_DIR = "ray"


def trial_number(config: Any) -> Optional[int]:
    """The number the driver gave this trial (None for a config without one)."""
    value = (config or {}).get(TRIAL_KEY)
    return int(value) if value is not None else None


def ray_experiment_dir(sweep_dir: Path) -> Path:
    return sweep_dir / RAY_DIR
