"""What a search prints, on a real local Ray (marker ``ray``), and rerunning the best trial of
a search that an experiment file defines (issue 15, items 5 and 8)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest
import yaml

from helpers import REPO, TRAIN, run_train, summary

pytestmark = [pytest.mark.ray]
pytest.importorskip("ray")


def without_live_redraws(lines: list[str]) -> list[str]:
    """The console minus the live table's blocks (a ``Search ...`` header and its indented rows)."""
    kept, in_block = [], False
    for line in lines:
        if line.startswith("Search ") and " done" in line:
            in_block = True
            continue
        if in_block and line.startswith("  "):
            continue
        in_block = False
        kept.append(line)
    return kept


def test_a_search_prints_a_sorted_live_table_and_a_final_table_and_its_best_trial_reruns(tmp_path):
    env = {**os.environ, "AEGIS_OUTPUT_ROOT": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    args = ["experiment=hpo_mlp", "trainer=smoke", "trainer.max_epochs=3", "logger=csv", "run_id=con",
            "hydra.sweeper.num_samples=4", "hydra.sweeper.num_cpus=2", "hydra.sweeper.seed=0"]
    proc = subprocess.run([sys.executable, str(TRAIN), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = (proc.stdout + proc.stderr).splitlines()
    rest = without_live_redraws(console)
    assert len(rest) <= 20, "\n".join(rest)  # was ~180 lines for these 4 trials
    assert not [line for line in console if "pid=" in line or "Traceback" in line or "\x1b[" in line]
    assert any(line.startswith("Search ") for line in console)  # the live table was drawn

    sweep = tmp_path / "hpo_mlp" / "multiruns" / "con"
    best = yaml.safe_load((sweep / "best.yaml").read_text())
    start = rest.index("Trials by val/acc (max), best first:")
    header, *rows = rest[start + 1:start + 6]
    assert header.split() == ["trial", "lr", "dropout", "hidden_dims", "epochs", "best", "val/acc", "status"]
    values = [float(row.split()[5]) for row in rows]
    assert values == sorted(values, reverse=True)
    assert int(rows[0].split()[0]) == best["trial_number"] and values[0] == pytest.approx(best["value"], abs=1e-4)
    for row in rows:
        number, epochs, status = row.split()[0], int(row.split()[4]), " ".join(row.split()[6:])
        assert status in ("completed", "stopped (ASHA)")
        assert (status == "completed") == (epochs == 3)
        assert summary(sweep / number)["status"] == ("completed" if status == "completed" else "stopped")

    # Item 5: the experiment selects the search; its command unselects it and reruns one trial.
    argv = shlex.split(best["command"])
    assert argv[:3] == ["python", "train.py", "experiment=hpo_mlp"] and "~search" in argv
    rerun_root = tmp_path / "rerun"
    again = run_train(argv[2:], rerun_root, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    (rerun_dir,) = [p.parent for p in rerun_root.rglob("summary.json")]
    assert "multiruns" not in str(rerun_dir)
    assert summary(rerun_dir)["checkpoints"]["best_score"] == pytest.approx(best["value"], abs=0.02)


def test_a_crashed_trial_is_one_console_line_and_optuna_takes_list_choices_without_a_warning(tmp_path):
    """Issue 24 item 2-3: Ray Tune logged each crashed trial's worker traceback (~80 lines, raw
    colour codes) on the console; Optuna warned twice that a list is not a categorical choice."""
    pytest.importorskip("optuna")
    env = {**os.environ, "AEGIS_OUTPUT_ROOT": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    # lr=1e30 passes the config checks but its loss is infinite at the second step: a crash.
    args = ["search=ray-tune", "trainer=smoke", "trainer.max_epochs=2", "logger=csv", "run_id=quiet",
            "hydra.sweeper.search_alg=optuna", "hydra.sweeper.num_cpus=2", "hydra.sweeper.seed=0",
            "hydra.sweeper.num_samples=3", "hydra.sweeper.max_concurrent_trials=2", "hydra.sweeper.max_failures=3",
            "model.lr=choice(0.01,1e30)", "model.hidden_dims=choice([64],[32,16])"]
    proc = subprocess.run([sys.executable, str(TRAIN), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = (proc.stdout + proc.stderr).splitlines()
    assert not [line for line in console if "Traceback" in line or "\x1b[" in line or "Warning" in line
                or "A new study created" in line], "\n".join(console)
    sweep = tmp_path / "train" / "multiruns" / "quiet"
    crashed = [p for p in sweep.iterdir() if p.name.isdigit() and summary(p)["status"] == "failed"]
    assert crashed, "\n".join(console)
    for trial in crashed:  # one line each, naming its train.log (and the final table's row)
        assert len([line for line in console if f"Trial {trial.name} crashed" in line]) == 1
        assert len([line for line in console if f"{trial}/train.log" in line]) == 2  # and the final table's
    assert len(without_live_redraws(console)) <= 16 + len(crashed), "\n".join(console)
    best = yaml.safe_load((sweep / "best.yaml").read_text())
    assert best["params"]["model.hidden_dims"] in ([64], [32, 16])  # the list itself, not its encoding
    assert best["config"]["model"]["hidden_dims"] == best["params"]["model.hidden_dims"]
