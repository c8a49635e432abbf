"""Ray Tune schedulers that number the trials and keep ASHA's rungs across a resume.

A trial's number names its run dir, its MLflow run and its line in best.yaml, so it must
be the same in the driver and in every worker, for every search algorithm. Ray's trial
ids do not carry one (Optuna's are random hex), and Python's ``hash()`` differs per
process. The scheduler sees every trial once, in the driver, when Ray Tune adds it, before
it starts: there it writes the next number into the trial's config (``TRIAL_KEY``), which
ships it to the worker and which Ray Tune saves with the trial, so a resumed search adds
its restored trials with their numbers and numbers new ones after them.

Ray Tune does not save a scheduler's state with the experiment: restored from
``tuner.pkl``, ASHA would start with empty rungs and judge the resumed trials against each
other only. ``ResumableASHA`` rebuilds its rungs when a restored trial is added, from the
trial's reported epochs in Ray's ``progress.csv`` (the same results, replayed in order).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Optional

from ray.tune.experiment import Trial
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler

from aegis.tune.progress import progress_rows, row_epoch
from aegis.tune.layout import TRIAL_KEY, trial_number

log = logging.getLogger("aegis.tune")



class _Numbering:
    """Mixed into a scheduler: ``on_trial_add`` numbers the trial first."""

    def _number(self, trial: Trial) -> int:
        numbers: dict[str, int] = self.__dict__.setdefault("_aegis_numbers", {})
        number = trial_number(trial.config)
        if number is None:
            number = max(numbers.values(), default=-1) + 1
            trial.config[TRIAL_KEY] = number
            # Ray Tune re-resolves a trial's config from its unresolved copy when it adds a
            # restored trial (search spaces with list values); the number must be in both.
            unresolved = getattr(trial, "_Trial__unresolved_config", None)
            if isinstance(unresolved, dict) and unresolved is not trial.config:
                unresolved[TRIAL_KEY] = number
            trial.invalidate_json_state()
        numbers[trial.trial_id] = number
        return number


class NumberedFIFO(_Numbering, FIFOScheduler):
    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        self._number(trial)
        super().on_trial_add(tune_controller, trial)


class ResumableASHA(_Numbering, AsyncHyperBandScheduler):
    """ASHA on epochs (``time_attr="epoch"``) whose rungs survive a resume."""

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        self._number(trial)
        super().on_trial_add(tune_controller, trial)
        history = reported(_trial_path(trial), self._metric)
        if history:
            bracket = self._trial_info[trial.trial_id]
            for epoch, value in history:
                bracket.on_result(trial, epoch, self._metric_op * value)
            log.debug("ASHA: trial %s replayed %d epochs", trial.trial_id, len(history))


def _trial_path(trial: Trial) -> Optional[str]:
    """The trial's dir in Ray's storage (the sweep dir, where its progress.csv was copied; not
    ``local_path``, the driver's staging dir, which a resumed search starts empty); None for a
    new trial (Ray names its dir when it starts)."""
    try:
        return trial.path
    except RuntimeError:
        return None


def reported(trial_path: Optional[str], metric: str) -> list[tuple[int, float]]:
    """(epoch, metric) of every result a trial reported, from Ray's ``progress.csv``, in
    epoch order; an epoch reported twice (re-run after a kill) counts once, the last time."""
    if not metric:
        return []
    found: dict[int, float] = {}
    for row in progress_rows(trial_path):
        epoch = row_epoch(row)
        try:
            value = float(row[metric])
        except (KeyError, TypeError, ValueError):
            continue
        if epoch is not None and not math.isnan(value):
            found[epoch] = value
    return sorted(found.items())
