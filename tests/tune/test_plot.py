"""trials.png (aegis.tune.plot) from synthetic trials: epochs on x, the best few named by
their varied values, trials that ended early marked at their last point."""

from __future__ import annotations

from pathlib import Path

import pytest

from aegis.tune.results import TrialRecord

pytest.importorskip("matplotlib")

from aegis.tune import plot  # noqa: E402


def record(number, values, error=None, **params):
    return TrialRecord(trial_id=f"abcde_{number:05d}", number=number, params=params,
                       history=[(i + 1, v) for i, v in enumerate(values)], error=error,
                       run_dir=Path(f"/sweep/{number}"))


TRIALS = [
    record(0, [0.30, 0.50, 0.60, 0.70], **{"model.lr": 0.01, "model.dropout": 0.1}),
    record(1, [0.20], **{"model.lr": 0.0001, "model.dropout": 0.4}),                 # stopped at epoch 1
    record(2, [0.40, 0.70, 0.80, 0.95], **{"model.lr": 0.03, "model.dropout": 0.2}),  # best
    record(3, [0.35, 0.45], **{"model.lr": 0.001, "model.dropout": 0.3}),             # stopped at epoch 2
    record(4, [0.10], error="ValueError: nan", **{"model.lr": 1e30, "model.dropout": 0.0}),
    record(5, [0.50, 0.60, 0.65, 0.66], **{"model.lr": 0.005, "model.dropout": 0.0}),
    record(6, [0.30, 0.40, 0.41, 0.42], **{"model.lr": 0.002, "model.dropout": 0.5}),
    record(7, [], error="RuntimeError: no epoch", **{"model.lr": 0.5, "model.dropout": 0.5}),
]
KEYS = ["model.lr", "model.dropout"]


def test_the_plot_names_the_best_few_by_their_values_on_an_epoch_axis_and_marks_early_ends(tmp_path):
    fig = plot.figure(TRIALS, "val/acc", "max", KEYS, max_epochs=4)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "val/acc"
    assert all(float(tick).is_integer() for tick in ax.get_xticks())
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend[:5] == ["#2 lr=0.03 dropout=0.2: 0.9500", "#0 lr=0.01 dropout=0.1: 0.7000",
                          "#5 lr=0.005 dropout=0: 0.6600", "#3 lr=0.001 dropout=0.3: 0.4500",
                          "#6 lr=0.002 dropout=0.5: 0.4200"]
    assert legend[5:] == ["2 other trials", "stopped early (last epoch)", "crashed (last epoch)"]
    ended = {line.get_gid(): (tuple(line.get_xdata()), tuple(line.get_ydata()), line.get_marker())
             for line in ax.get_lines() if (line.get_gid() or "").startswith("ended-")}
    assert ended == {"ended-1": ((1,), (0.20,), "x"), "ended-3": ((2,), (0.45,), "x"),
                     "ended-4": ((1,), (0.10,), "X")}
    best_line = max(ax.get_lines(), key=lambda line: line.get_linewidth())
    assert tuple(best_line.get_ydata()) == (0.40, 0.70, 0.80, 0.95)

    path = plot.write_plot(tmp_path, TRIALS, "val/acc", "max", KEYS, max_epochs=4)
    assert path == tmp_path / "trials.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lower_is_better_ranks_the_other_way_and_a_complete_search_has_no_end_marks():
    done = [record(0, [0.9, 0.5], **{"model.lr": 0.1}), record(1, [0.8, 0.3], **{"model.lr": 0.2})]
    fig = plot.figure(done, "val/loss", "min", ["model.lr"], max_epochs=2)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["#1 lr=0.2: 0.3000", "#0 lr=0.1: 0.5000"]
    assert not [line for line in ax.get_lines() if (line.get_gid() or "").startswith("ended-")]
