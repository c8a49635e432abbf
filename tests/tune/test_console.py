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


def test_eta_is_the_rate_so_far_and_waits_for_a_trial_to_end():
    # 20 epochs in 40 s, start-ups and concurrency included: 10 left take 20 s.
    assert console.eta_seconds(20, 40.0, epochs_left=10, trials_ended=1) == pytest.approx(20.0)
    # Before any trial ended, the time so far is mostly start-up: no ETA (was 5:30 at 0:15 for a
    # search that ended 26 s later).
    assert console.eta_seconds(4, 15.0, epochs_left=56, trials_ended=0) is None
    assert console.eta_seconds(0, 15.0, epochs_left=10, trials_ended=1) is None
    assert console.eta_seconds(3, 10.0, epochs_left=0, trials_ended=0) == 0.0


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


def test_a_live_row_shows_the_best_of_every_result_not_only_those_drawn():
    """Issue 24 item 1: the table read the last result at each draw (every 15 s in a log), so a
    trial at 10/10 0.9111 had reached 0.9278 between two draws."""
    done = trial("abcde_00002", "TERMINATED", {"__aegis_trial": 2}, epoch=10, **{"val/acc": 0.9111})
    done.metric_analysis = {"val/acc": {"max": 0.9278, "min": 0.41, "last": 0.9111}}
    row = console.trial_row(done, [], "val/acc", "max", 10, True, {})
    assert (row.best, row.status) == (0.9278, "completed")
    assert console.trial_row(done, [], "val/acc", "min", 10, True, {}).best == 0.41
    rows = [row, console.Row(0, {}, epoch=10, max_epochs=10, best=0.92, status="completed")]
    head = console.live_lines(rows, [], "val/acc", "max", console.Progress(2, 1.0, counts={"completed": 2}))[0]
    assert head.endswith("best val/acc=0.9278 (trial 2)")


def test_a_list_choice_reaches_ray_as_a_string_and_every_reader_gets_the_list_back():
    """Issue 24 item 3: Optuna warns for (and stores the repr of) a categorical choice that is a list."""
    pytest.importorskip("ray")
    from aegis.tune.space import parse
    from aegis.tune.trial import sampled

    space = parse(["model.hidden_dims=choice([64],[256,128])", "model.lr=choice(0.1,0.01)"])
    dims = space.to_ray()
    assert all(isinstance(v, str) for v in dims["model.hidden_dims"].categories)
    assert dims["model.lr"].categories == [0.1, 0.01]
    config = {"model.hidden_dims": dims["model.hidden_dims"].categories[1], "model.lr": 0.1, "__aegis_trial": 3}
    assert sampled(config) == {"model.hidden_dims": [256, 128], "model.lr": 0.1}
    assert space.trial_overrides(sampled(config)) == ["model.hidden_dims=[256,128]", "model.lr=0.1"]
    row = console.trial_row(trial("x", "RUNNING", config, epoch=1), ["model.hidden_dims"], "val/acc", "max", 4,
                            False, {})
    assert row.params == {"model.hidden_dims": [256, 128]}


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
    assert "ETA" not in text  # no trial has ended: nothing to estimate it from
    import time

    timed = console.make_reporter(["model.lr"], "val/acc", "max", 4, 4, asha=True, stream=out, every_s=0)
    timed.setup(start_time=time.time() - 40)
    timed.report([trial("abcde_00000", "PENDING", {"model.lr": 0.1})], False)
    timed.report([trial("abcde_00000", "TERMINATED", {"model.lr": 0.1}, epoch=4, **{"val/acc": 0.5}),
                  trial("abcde_00001", "RUNNING", {"model.lr": 0.2}, epoch=2, **{"val/acc": 0.4})], False)
    # 6 epochs in 40 s; 2 + 2 * 4 left: 67 s
    assert "ETA ≤ 0:01:07" in out.getvalue().splitlines()[-4]

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


def test_the_interrupt_message_adds_only_what_the_command_lacks():
    """Issue 24 item 3: it said "the same command plus run_id=k3" to a command with run_id=k3."""
    given = console.interrupted_message(2, "k3", ["search=ray-tune", "run_id=k3"])
    assert given.endswith("Continue it with the same command.") and "run_id" not in given
    generated = console.interrupted_message(2, "2026-12-05_00-01", ["search=ray-tune"])
    assert generated.endswith("the same command plus run_id=2026-12-05_00-01.")
