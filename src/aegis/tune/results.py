"""What a person takes away from a search: the best trial and how to rerun it.

``best.yaml`` carries the best trial's metric, its overrides, the exact
``python train.py ...`` command that reproduces it as a single run, and its whole
resolved config. (The picture, ``trials.png``, is ``aegis.tune.plot``'s.)
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from aegis.tune.space import SearchSpace, format_value

BEST_FILE = "best.yaml"
# Overrides that belong to the search, not to the run it found: the search's own group
# (rerunning a trial must not start another search) and run_id (it names the search).
SEARCH_ONLY_KEYS = ("search", "run_id")


@dataclass
class TrialRecord:
    """One trial as the search ends: what the final table, best.yaml and the plot read.

    ``status``: completed, stopped (by ASHA), failed (crashed), interrupted (the search was
    interrupted before the trial ended) or running (no record: it never got to train).
    ``epochs``: the epochs it completed. ``error``: a crashed trial's cause, one clean line
    (``failure`` has the whole record, ``aegis.failures.record.Failure.as_dict``). ``log``: its
    ``train.log`` in the sweep dir."""

    trial_id: str
    number: int
    params: dict[str, Any]
    history: list[tuple[int, float]] = field(default_factory=list)  # (epoch, metric)
    error: Optional[str] = None
    run_dir: Optional[Path] = None
    status: str = "completed"
    epochs: Optional[int] = None
    log: Optional[Path] = None
    failure: Optional[dict[str, Any]] = None

    def best(self, mode: str) -> Optional[float]:
        values = [v for _, v in self.history if not math.isnan(v)]
        if not values:
            return None
        return max(values) if mode == "max" else min(values)


def reproduce_overrides(space: SearchSpace, params: dict[str, Any], unselect: Sequence[str] = ()) -> list[str]:
    """The overrides of one trial as a single run: the shared ones without the search's
    own, then ``unselect`` (what turns off a search a config file selected, see
    ``search_unselect``), then the trial's sampled values."""
    def key(line: str) -> str:
        return line.split("=", 1)[0].lstrip("+~")

    fixed = [o for o in space.fixed if key(o) not in SEARCH_ONLY_KEYS]
    return fixed + list(unselect) + [f"{k}={format_value(params[k])}" for k in space.dims if k in params]


def search_unselect(choices: Any, task_overrides: Sequence[str]) -> list[str]:
    """Overrides that turn the search off when a config file (an experiment) selected it.

    ``search=...`` given on the command line is simply left out of the reproduce command.
    When ``experiment=hpo`` selects the search itself, leaving it out is not enough: the
    command would select it again. ``~search`` removes it, and ``hydra/sweeper=<the
    sweeper>`` keeps the experiment's ``hydra.sweeper.*`` keys composing (they configure
    nothing in a single run, where Hydra never calls the sweeper).
    """
    if choices.get("search") is None:
        return []
    if any(line.split("=", 1)[0].lstrip("+~") == "search" for line in task_overrides):
        return []
    return ["~search", f"hydra/sweeper={choices.get('hydra/sweeper')}"]


def reproduce_command(overrides: Sequence[str], entry: str = "train.py") -> str:
    return " ".join(["python", entry, *(shlex.quote(o) for o in overrides)])


def pick_best(trials: Sequence[TrialRecord], mode: str) -> Optional[TrialRecord]:
    scored = [(t.best(mode), t) for t in trials if t.best(mode) is not None]
    if not scored:
        return None
    pick = max if mode == "max" else min
    return pick(scored, key=lambda pair: pair[0])[1]


def write_best(sweep_dir: Path, best: TrialRecord, space: SearchSpace, metric: str, mode: str,
               entry: str = "train.py", unselect: Sequence[str] = ()) -> dict[str, Any]:
    overrides = reproduce_overrides(space, best.params, unselect)
    config = None
    if best.run_dir and (best.run_dir / "config.yaml").is_file():
        config = yaml.safe_load((best.run_dir / "config.yaml").read_text())
    record = {
        "metric": metric,
        "mode": mode,
        "value": best.best(mode),
        "trial_id": best.trial_id,
        "trial_number": best.number,
        "run_dir": str(best.run_dir) if best.run_dir else None,
        "params": {k: _plain(v) for k, v in best.params.items()},
        "overrides": overrides,
        "command": reproduce_command(overrides, entry),
        "config": config,
    }
    (sweep_dir / BEST_FILE).write_text(yaml.safe_dump(record, sort_keys=False))
    return record


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
