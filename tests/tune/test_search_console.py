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
