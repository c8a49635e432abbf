"""What a search prints: one live table of its trials, then one final table.

Ray Tune's own console output is built for Ray's developers: its new-style reporter
(on unless ``RAY_AIR_NEW_OUTPUT=0``) prints a box per trial start and per trial result,
unsorted, and ignores a ``progress_reporter`` passed to it ("AIR_VERBOSITY is set,
ignoring passed-in ProgressReporter"); the workers' logs come on top (``log_to_driver``).
An 8-trial search printed ~350 lines. Here instead:

- the legacy reporter path is selected (``RAY_AIR_NEW_OUTPUT=0``) so that Ray calls
  :class:`LiveTable` (a ``ray.tune.ProgressReporter``) and nothing else;
- :class:`LiveTable` shows every trial sorted by its best metric so far: its number (its
  run dir), the varied values, its epoch, the metric, its status (ASHA's stops marked),
  and a header with the counts, the time so far and an ETA. On a terminal it redraws in
  place; elsewhere (CI, a pod's log) it prints a block when something changed, at most
  every ``every_s`` seconds;
- workers' logs stay in the trials' own ``train.log`` (Hydra's job logging in each run
  dir), not on the terminal (``ray.init(log_to_driver=False)``; ``hydra.sweeper.verbose=true``
  brings them back, with Ray's own messages);
- :func:`final_table` is the search's result: every trial sorted by its best metric,
  with status, epochs and, for a crashed trial, its cause and log.

The table code is pure (rows in, lines out) and tested without Ray.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, TextIO

from aegis.tune.space import decoded

# Marks the header of each live block (tests and log readers skip redraws by it).
LIVE_PREFIX = "Search "
FINAL_TITLE = "Trials by"
# The trial number the driver puts in each trial's config (aegis.tune.trial); a Ray
# trial without it falls back to the index in its trial id (``e06a0_00003`` -> 3).
_NUMBER_KEYS = ("__aegis_trial",)


@dataclass
class Row:
    """One trial as a table shows it."""

    number: int
    params: dict[str, Any]
    epoch: Optional[int] = None
    max_epochs: Optional[int] = None
    best: Optional[float] = None
    status: str = "pending"
    detail: str = ""  # a crashed trial's cause and log


@dataclass
class Progress:
    """The header's figures."""

    total: int
    elapsed_s: float
    eta_s: Optional[float] = None
    counts: dict[str, int] = field(default_factory=dict)


def short_names(keys: Sequence[str]) -> dict[str, str]:
    """The shortest dotted suffix that tells each key apart (``model.lr`` -> ``lr``)."""
    names: dict[str, str] = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            name = ".".join(parts[-n:])
            if sum(1 for other in keys if other == name or other.endswith("." + name)) == 1:
                break
        names[key] = name
    return names


def format_param(value: Any) -> str:
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "null"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_param(v) for v in value) + "]"
    return str(value)


def format_duration(seconds: Optional[float]) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def sort_rows(rows: Sequence[Row], mode: str) -> list[Row]:
    """Best metric first; trials without one last, by number."""
    sign = -1.0 if mode == "max" else 1.0
    return sorted(rows, key=lambda r: (r.best is None, sign * r.best if r.best is not None else 0.0, r.number))


def table(header: Sequence[str], body: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Left-aligned columns, two spaces apart."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *body)]
    lines = []
    for cells in [header, *body]:
        line = "  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths))
        lines.append(indent + line.rstrip())
    return lines


def _cells(row: Row, keys: Sequence[str]) -> list[str]:
    epoch = "-" if row.epoch is None else str(row.epoch) if row.max_epochs is None else f"{row.epoch}/{row.max_epochs}"
    value = "-" if row.best is None else f"{row.best:.4f}"
    return [str(row.number), *(format_param(row.params.get(k, "")) for k in keys), epoch, value, row.status]


def live_lines(rows: Sequence[Row], keys: Sequence[str], metric: str, mode: str, progress: Progress) -> list[str]:
    """One redraw of the live table: a header line, then every trial, best first."""
    ordered = sort_rows(rows, mode)
    counts = progress.counts
    done = sum(counts.get(s, 0) for s in counts if s not in ("running", "pending", "paused"))
    parts = [f"{LIVE_PREFIX}{done}/{progress.total} done"]
    parts += [f"{counts[s]} {s}" for s in ("running", "pending") if counts.get(s)]
    head = ", ".join(parts) + f" · {format_duration(progress.elapsed_s)} elapsed"
    if progress.eta_s is not None:
        head += f" · ETA ≤ {format_duration(progress.eta_s)}"
    if ordered and ordered[0].best is not None:
        head += f" · best {metric}={ordered[0].best:.4f} (trial {ordered[0].number})"
    names = short_names(keys)
    header = ["trial", *(names[k] for k in keys), "epoch", metric, "status"]
    return [head, *table(header, [_cells(r, keys) for r in ordered])]


def final_lines(rows: Sequence[Row], keys: Sequence[str], metric: str, mode: str) -> list[str]:
    """The search's result: every trial best first, with status, epochs and a crash's cause."""
    ordered = sort_rows(rows, mode)
    names = short_names(keys)
    header = ["trial", *(names[k] for k in keys), "epochs", f"best {metric}", "status"]
    body = []
    for row in ordered:
        cells = _cells(row, keys)
        cells[-3] = "-" if row.epoch is None else str(row.epoch)
        body.append(cells + ([row.detail] if row.detail else []))
    if any(row.detail for row in ordered):
        header = [*header, "cause"]
        body = [cells + [""] * (len(header) - len(cells)) for cells in body]
    return [f"{FINAL_TITLE} {metric} ({mode}), best first:", *table(header, body)]


def eta_seconds(epochs_done: int, elapsed_s: float, epochs_left: int, trials_ended: int) -> Optional[float]:
    """Time left at the rate the search has trained so far: epochs done per second of wall time,
    start-ups and the trials running at once included. None until it can be estimated: before a
    trial has ended, the rate so far is mostly its workers' start-up (torch, data: tens of
    seconds against an epoch's few) and tells nothing about the epochs left.

    An upper bound under ASHA, which stops trials before their last epoch."""
    if epochs_left <= 0:
        return 0.0
    if trials_ended < 1 or epochs_done < 1 or elapsed_s <= 0:
        return None
    return epochs_left * elapsed_s / epochs_done


def interrupted_message(unfinished: int, run_id: str, overrides: Sequence[str]) -> str:
    """What an interrupted search prints: the same command continues it (the driver finds Ray
    Tune's saved state in its sweep dir), plus ``run_id=...`` only when the command lacks it
    (a run id the driver generated)."""
    given = any(str(o).lstrip("+~").split("=", 1)[0] == "run_id" for o in overrides)
    plus = "" if given else f" plus run_id={run_id}"
    return (f"Interrupted: {unfinished} trials did not finish; Ray Tune saved the search. Continue it with "
            f"the same command{plus}.")


# ---------------------------------------------------------------- records (the final table)


def record_row(record: Any, mode: str, max_epochs: Optional[int], asha: bool) -> Row:
    """A finished trial's row from its ``aegis.tune.results.TrialRecord``.

    Reads ``status``, ``epochs``, ``error`` and ``log`` where the record has them; a record
    without a status is completed, stopped (fewer epochs than ``max_epochs``) or failed."""
    epochs = getattr(record, "epochs", None)
    if epochs is None and record.history:
        epochs = max(epoch for epoch, _ in record.history)
    status = getattr(record, "status", None) or ("failed" if record.error else "completed")
    if status == "completed" and not record.error and epochs is not None and max_epochs and epochs < max_epochs:
        status = "stopped"
    if status == "stopped" and asha:
        status = "stopped (ASHA)"
    if record.error:
        status = "failed"
    detail = ""
    if record.error:
        log = getattr(record, "log", None) or record.run_dir
        detail = _shorten(record.error, 100) + (f" (log: {log})" if log else "")
    return Row(number=record.number, params=dict(record.params), epoch=epochs, best=record.best(mode),
               status=status, detail=detail)


def _shorten(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters, without colour codes or credentials."""
    from aegis.failures.record import clean

    return clean(" ".join(str(text).split()), limit) or ""


def final_table(records: Sequence[Any], keys: Sequence[str], metric: str, mode: str,
                max_epochs: Optional[int], asha: bool) -> list[str]:
    rows = [record_row(r, mode, max_epochs, asha) for r in records]
    return final_lines(rows, keys, metric, mode)


# ---------------------------------------------------------------- Ray's side


def trial_row(trial: Any, keys: Sequence[str], metric: str, mode: str, max_epochs: Optional[int],
              asha: bool, best: dict[str, float]) -> Row:
    """A live trial's row from Ray Tune's ``Trial`` (``best``: best metric so far by trial id)."""
    config = dict(trial.config or {})
    number = next((config[k] for k in _NUMBER_KEYS if config.get(k) is not None), None)
    if number is None:
        tail = str(trial.trial_id).rsplit("_", 1)[-1]
        number = int(tail) if tail.isdigit() else -1
    result = trial.last_result or {}
    epoch = result.get("epoch")
    pick = max if mode == "max" else min
    # Ray Tune keeps each metric's max and min over every result the trial reported
    # (Trial.metric_analysis, saved with the search): the best so far, even of results that came
    # and went between two draws. The last result is the fallback for a trial without it.
    analysis = (getattr(trial, "metric_analysis", None) or {}).get(metric) or {}
    for value in (analysis.get(mode), result.get(metric)):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            seen = best.get(trial.trial_id)
            best[trial.trial_id] = value if seen is None else pick(seen, value)
    trial_max = config.get("trainer.max_epochs", max_epochs)
    status = {"PENDING": "pending", "RUNNING": "running", "PAUSED": "paused", "ERROR": "failed"}.get(
        trial.status, "completed")
    if status == "completed" and epoch is not None and trial_max and epoch < trial_max:
        status = "stopped (ASHA)" if asha else "stopped"
    values = decoded(config)
    return Row(number=int(number), params={k: values.get(k) for k in keys}, epoch=epoch, max_epochs=trial_max,
               best=best.get(trial.trial_id), status=status)


def make_reporter(keys: Sequence[str], metric: str, mode: str, total: int, max_epochs: Optional[int],
                  asha: bool, stream: Optional[TextIO] = None, every_s: Optional[float] = None) -> Any:
    """A ``ray.tune.ProgressReporter`` drawing the live table (imports Ray: search time only)."""
    from ray.tune import ProgressReporter

    def terminal() -> TextIO:
        # Looked up at each draw, not kept: Ray Tune pickles the reporter with the search
        # (tuner.pkl) and a resumed search draws on the stderr it has then.
        return stream or sys.stderr

    class LiveTable(ProgressReporter):
        def __init__(self) -> None:
            self.started = time.time()
            self.last_drawn = 0.0
            self.drawn_lines = 0
            self.last_state: Any = None
            self.best: dict[str, float] = {}
            self.every_s = every_s
            self.epochs_before: Optional[int] = None  # epochs done before this session's first draw

        def _every_s(self, tty: bool) -> float:
            return self.every_s if self.every_s is not None else (1.0 if tty else 15.0)

        def setup(self, start_time: Optional[float] = None, total_samples: Optional[int] = None,
                  metric: Optional[str] = None, mode: Optional[str] = None, **kwargs: Any) -> None:
            self.started = start_time or self.started
            self.epochs_before = None  # a resumed search counts only the epochs it trains itself

        def should_report(self, trials: list, done: bool = False) -> bool:
            if done:
                return False  # the final table says it
            state = tuple((t.trial_id, t.status, (t.last_result or {}).get("epoch")) for t in trials)
            if state == self.last_state or time.time() - self.last_drawn < self._every_s(terminal().isatty()):
                return False
            self.last_state = state
            return True

        def report(self, trials: list, done: bool, *sys_info: Any) -> None:
            out = terminal()
            tty = out.isatty()
            rows = [trial_row(t, keys, metric, mode, max_epochs, asha, self.best) for t in trials]
            counts: dict[str, int] = {}
            for row in rows:
                key = "stopped" if row.status.startswith("stopped") else row.status
                counts[key] = counts.get(key, 0) + 1
            counts["pending"] = counts.get("pending", 0) + max(0, total - len(rows))
            lines = live_lines(rows, keys, metric, mode, Progress(total, time.time() - self.started,
                                                                  self._eta(trials, rows), counts))
            if tty:  # one screen line per line, or moving up len(lines) would not reach the block's top
                width = shutil.get_terminal_size().columns
                lines = [line if len(line) < width else line[: width - 2] + "…" for line in lines]
            if tty and self.drawn_lines:
                out.write(f"\x1b[{self.drawn_lines}F\x1b[J")  # back to the last block's first line, clear
            out.write("\n".join(lines) + "\n")
            out.flush()
            self.drawn_lines = len(lines) if tty else 0
            self.last_drawn = time.time()

        def _eta(self, trials: list, rows: list[Row]) -> Optional[float]:
            done = sum(row.epoch or 0 for row in rows)
            if self.epochs_before is None:
                self.epochs_before = done
            done -= self.epochs_before
            ended = sum(1 for row in rows if row.status not in ("running", "pending", "paused"))
            left = 0
            for row in rows:
                if row.status in ("running", "pending", "paused") and row.max_epochs:
                    left += row.max_epochs - (row.epoch or 0)
            left += max(0, total - len(rows)) * (max_epochs or 0)
            return eta_seconds(done, time.time() - self.started, left, ended)

    return LiveTable()
