"""The SLURM commands of README.md and docs/*.md run on a real cluster as written, plus the
small budget the slow tier gives every documented command (tests/test_doc_examples_run.py);
those that need GPUs are left to the default tier's validation."""

from __future__ import annotations

import json
import time

import pytest

from helpers import run_dirs, run_train, summary
from test_doc_examples import COMMANDS, FILLED  # noqa: F401
from test_doc_examples_run import DISTINCT, TRAIN, _argv

SLURM = [pytest.param(rest, id=where[:90]) for rest, where in DISTINCT.items()
         if "launcher=slurm" in rest.split() and "trainer.accelerator=gpu" not in rest]


def test_the_docs_have_slurm_commands_to_run():
    assert len(SLURM) >= 3


@pytest.mark.parametrize("rest", SLURM)
def test_every_documented_slurm_command_runs_on_a_real_cluster(slurm_cluster, tmp_path, rest):
    argv = _argv(rest)
    done = run_train([*argv, *TRAIN, "logger=csv"], tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    if "launcher.dry_run=true" in argv:
        assert "#SBATCH" in done.stdout, done.stdout[-2000:]
        # The script is kept in the run dir; nothing is queued, nothing trained.
        assert not slurm_cluster.run(["squeue", "-h"]).stdout.strip() and not list(tmp_path.rglob("summary.json"))
        return
    dirs = run_dirs(tmp_path)
    assert len(dirs) == (2 if "-m" in argv else 1), dirs
    if "launcher.wait=false" in argv:  # submitted and returned: the job finishes on its own
        [run_dir] = dirs
        job_id = json.loads((run_dir / "job.json").read_text())["backend"]["job_id"]
        assert slurm_cluster.wait_for(job_id, "COMPLETED", timeout=300) == "COMPLETED"
        end = time.monotonic() + 30
        while summary(run_dir)["status"] != "completed" and time.monotonic() < end:
            time.sleep(0.5)
    assert all(summary(d)["status"] == "completed" for d in dirs), [summary(d)["status"] for d in dirs]
