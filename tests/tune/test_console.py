"""The search's console (aegis.tune.console): live and final tables from synthetic trials, no Ray run."""

from __future__ import annotations

import io
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from aegis.tune import console
from aegis.tune.results import TrialRecord

KEYS = ["model.lr", "model.dropout", "data.dropout"]


def record(number, values, error=None, **params):
    return TrialRecord(trial_id=f"abcde_{number:05d}", number=number, params=params,
                       history=[(i + 1, v) for i, v in enumerate(values)], error=error,
                       run_dir=Path(f"/sweep/{number}"))


def test_short_names_tell_keys_apart():
    assert console.short_names(KEYS) == {"model.lr": "lr", "model.dropout": "model.dropout",
                                                        "data.dropout": "data.dropout"}


def test_the_final_table_is_sorted_by_the_metric_with_status_epochs_and_cause():
    records = [
        record(0, [0.5, 0.6], **{"model.lr": 0.01}),                    # stopped by ASHA at epoch 2 of 4
        record(1, [0.5, 0.7, 0.8, 0.9], **{"model.lr": 0.1}),           # completed
        record(2, [], error="\x1b[36mValueError\x1b[39m: loss is nan", **{"model.lr": 1e30}),
        record(3, [0.2, 0.3, 0.4, 0.95], **{"model.lr": 0.001}),        # best
    ]
    lines = console.final_table(records, ["model.lr"], "val/acc", "max", max_epochs=4, asha=True)
    assert lines[0] == "Trials by val/acc (max), best first:"
    header = lines[1].split()
    assert header == ["trial", "lr", "epochs", "best", "val/acc", "status", "cause"]
    rows = [line.split() for line in lines[2:]]
    assert [r[0] for r in rows] == ["3", "1", "0", "2"]  # best first, the crashed one last
    assert rows[0][1:5] == ["0.001", "4", "0.9500", "completed"]
    assert rows[2][2:6] == ["2", "0.6000", "stopped", "(ASHA)"]
    assert "failed" in rows[3] and "ValueError: loss is nan (log: /sweep/2)" in lines[-1]

    minimised = console.final_table(records[:2], ["model.lr"], "val/acc", "min", max_epochs=4, asha=False)
    assert [line.split()[0] for line in minimised[2:]] == ["0", "1"]
    assert "stopped" in minimised[2] and "ASHA" not in minimised[2]


def test_the_final_table_reads_the_records_status_epochs_and_log_when_they_have_them():
    r = record(5, [0.4], error="RuntimeError: boom", **{"model.lr": 0.5})
    r.status, r.epochs, r.log = "failed", 1, Path("/sweep/5/train.log")
    lines = console.final_table([r], ["model.lr"], "val/acc", "max", max_epochs=4, asha=True)
    assert lines[2].split()[:5] == ["5", "0.5", "1", "0.4000", "failed"]
    assert lines[2].endswith("RuntimeError: boom (log: /sweep/5/train.log)")


def test_the_live_table_has_counts_elapsed_eta_and_the_best_trial_first():
    rows = [console.Row(0, {"model.lr": 0.01}, epoch=1, max_epochs=4, best=0.5, status="running"),
            console.Row(1, {"model.lr": 0.1}, epoch=2, max_epochs=4, best=0.7, status="stopped (ASHA)"),
            console.Row(2, {"model.lr": 0.2}, status="pending")]
    progress = console.Progress(total=8, elapsed_s=75, eta_s=3725,
                                counts={"running": 1, "stopped": 1, "pending": 6})
    lines = console.live_lines(rows, ["model.lr"], "val/acc", "max", progress)
    assert lines[0] == ("Search 1/8 done, 1 running, 6 pending · 0:01:15 elapsed · ETA ≤ 1:02:05 · "
                        "best val/acc=0.7000 (trial 1)")
    assert lines[1].split() == ["trial", "lr", "epoch", "val/acc", "status"]
    assert [line.split()[0] for line in lines[2:]] == ["1", "0", "2"]
    assert lines[2].split()[2:] == ["2/4", "0.7000", "stopped", "(ASHA)"]


def test_eta_is_the_mean_epoch_time_over_the_epochs_left_per_slot():
    assert console.eta_seconds([2.0, 4.0], epochs_left=10, slots=2) == pytest.approx(15.0)
    assert console.eta_seconds([], epochs_left=10, slots=2) is None
    assert console.eta_seconds([3.0], epochs_left=0, slots=1) == 0.0


def trial(trial_id, status, config, **result):
    return SimpleNamespace(trial_id=trial_id, status=status, config=config, last_result=result)


def test_a_ray_trial_becomes_a_row_numbered_as_its_run_dir_and_asha_stops_are_marked():
    best: dict[str, float] = {}
    stopped = trial("abcde_00003", "TERMINATED", {"model.lr": 0.1}, epoch=2, **{"val/acc": 0.6})
    row = console.trial_row(stopped, ["model.lr"], "val/acc", "max", 4, True, best)
    assert (row.number, row.epoch, row.best, row.status) == (3, 2, 0.6, "stopped (ASHA)")
    numbered = trial("x", "RUNNING", {"model.lr": 0.1, "__aegis_trial": 7}, epoch=1, **{"val/acc": 0.9})
    row = console.trial_row(numbered, ["model.lr"], "val/acc", "max", 4, True, best)
    assert (row.number, row.status, row.params) == (7, "running", {"model.lr": 0.1})
    later = trial("x", "RUNNING", {"__aegis_trial": 7}, epoch=2, **{"val/acc": 0.8})
    assert console.trial_row(later, [], "val/acc", "max", 4, True, best).best == 0.9  # best so far


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_reporter_redraws_in_place_on_a_terminal_and_prints_blocks_elsewhere(monkeypatch):
    pytest.importorskip("ray")
    trials = [trial("abcde_00000", "RUNNING", {"model.lr": 0.1}, epoch=2, time_this_iter_s=2.0,
                    **{"val/acc": 0.5}),
              trial("abcde_00001", "RUNNING", {"model.lr": 0.2}, epoch=1, time_this_iter_s=40.0,
                    **{"val/acc": 0.4})]
    out = io.StringIO()
    reporter = console.make_reporter(["model.lr"], "val/acc", "max", 4, 4, asha=True, stream=out, every_s=0)
    assert reporter.should_report(trials)
    reporter.report(trials, False)
    assert not reporter.should_report(trials)  # nothing changed
    assert not reporter.should_report(trials, done=True)  # the final table says it
    text = out.getvalue()
    assert text.startswith("Search 0/4 done, 2 running, 2 pending") and "\x1b[" not in text
    # (2 + 3 + 2 * 4) epochs left at 2 s (the first epoch's 40 s paid the start-up), two at once
    assert "ETA ≤ 0:00:13" in text

    tty = Terminal()
    monkeypatch.setattr(console.shutil, "get_terminal_size", lambda: os.terminal_size((40, 24)))
    reporter = console.make_reporter(["model.lr"], "val/acc", "max", 4, 4, asha=True, stream=tty, every_s=0)
    reporter.report(trials, False)
    reporter.report(trials, False)
    assert tty.getvalue().count("\x1b[4F\x1b[J") == 1  # the second draw replaced the first one's 4 lines
    drawn = tty.getvalue().split("\x1b[J")[-1].splitlines()
    assert len(drawn) == 4 and all(len(line) < 40 for line in drawn)  # no line wraps on a 40-column terminal


def test_the_reporter_survives_ray_tunes_pickling_of_the_search():
    """Ray Tune saves the RunConfig, reporter included, in tuner.pkl; a resumed search draws with it."""
    pytest.importorskip("ray")
    from ray import cloudpickle

    out = io.StringIO()
    reporter = console.make_reporter(["model.lr"], "val/acc", "max", 2, 4, asha=False, every_s=0)
    restored = cloudpickle.loads(cloudpickle.dumps(reporter))
    restored.setup(start_time=0.0)
    trials = [trial("abcde_00001", "TERMINATED", {"model.lr": 0.1}, epoch=4, **{"val/acc": 0.9})]
    assert restored.should_report(trials)
    import contextlib

    with contextlib.redirect_stderr(out):
        restored.report(trials, False)
    assert "1      0.1  4/4    0.9000   completed" in out.getvalue()
