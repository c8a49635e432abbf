"""Every ``python train.py ...`` command in README.md and docs/*.md that can run on this
machine runs to its end here, as written plus a small budget; the cluster kinds render as a
dry run.

tests/test_doc_examples.py (default tier) composes and validates every command; this file
is the slow and Ray tiers' half: an example can validate and still fail once it starts (the
ranks of ``experiment=synthetic_ddp`` once refused the experiment the parent accepted). The
budget (one or two epochs of a few batches, two trials) is appended, so a doc's own value of
the same key is overridden by it and nothing else changes. A command that needs what this
machine lacks (a GPU, a cloud bucket, a Ray or SLURM cluster, a second machine) is skipped
with that reason: the default tier still validates it, and the SLURM tier runs SLURM's own.
An ``Error:`` or ``Run failed:`` line a doc shows under a command must be what it prints.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys

import pytest

from helpers import REPO, run_dirs, summary
from test_doc_examples import COMMANDS, FILLED, data_md_files  # noqa: F401  (a fixture, used by name)

TRAIN = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=2",
         "trainer.limit_test_batches=2"]
# A drill's fault must fire: fault.step 10 needs two epochs of eight batches (a DDP rank's share).
DRILL = ["trainer.max_epochs=2", "trainer.limit_train_batches=8", "trainer.limit_val_batches=2",
         "trainer.limit_test_batches=2"]
SEARCH = ["hydra.sweeper.num_samples=2", "hydra.sweeper.max_concurrent_trials=2", "hydra.sweeper.plot=false",
          "trainer.max_epochs=2", "trainer.limit_train_batches=2", "trainer.limit_val_batches=2",
          "trainer.limit_test_batches=2"]
KUBERNETES = ("launcher=k8s-job", "launcher=pytorchjob", "launcher=trainjob", "launcher=rayjob")
# (a part of the command, why this machine cannot run it) in the order they are tried.
CANNOT = [
    ("trainer.accelerator=gpu", "needs a GPU"),
    ("launcher=slurm", "needs a SLURM cluster (the SLURM tier runs launcher=slurm)"),
    ("hydra/launcher=submitit_slurm", "needs a SLURM cluster (the SLURM tier runs submitit)"),
    ("address=auto", "needs a running Ray cluster"),
    ("launcher.master_addr=", "starts one node of a gang whose other node is another machine"),
    ("s3://", "reads a cloud bucket"),
    ("https://files.", "downloads a dataset"),
    ("logger.tracking_uri=https://", "logs to a team's MLflow server"),
]


def _kind(rest: str) -> tuple[str, str | None]:
    """How this command runs here: ``dry-run``, ``search``, ``ray-jobs`` (a multirun on Hydra's Ray
    launcher), ``train`` or ``skip`` (and why)."""
    if any(k in rest.split() for k in KUBERNETES):
        return "dry-run", None
    for part, why in CANNOT:
        if part in rest:
            return "skip", why
    if "hydra/launcher=ray" in rest:
        return "ray-jobs", None
    if re.search(r"\b(search|experiment)=(ray-tune|digits_mlp|hpo_mlp)\b", rest) and "~search" not in rest:
        return "search", None
    return "train", None


def _shown(where: str) -> list[str]:
    """The ``Run failed:`` lines a doc shows under this command."""
    doc = next(p for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))] if p.name == where.split(":")[0])
    command = where.split(": ", 1)[1]
    for block in re.findall(r"```[a-z]*\n(.*?)```", doc.read_text(), re.S):
        lines = block.replace("\\\n", " ").splitlines()
        for index, line in enumerate(lines):
            if re.sub(r"\s+", " ", line.strip().lstrip("$ ")).startswith(re.sub(r"\s+", " ", command).strip()):
                return [later.strip() for later in lines[index + 1:] if later.strip().startswith("Run failed:")]
    return []


SPACE = "model.lr=tag(log,interval(1e-4,1e-1))"  # what "..." stands for after a search=ray-tune


def _argv(rest: str) -> list[str]:
    for placeholder, value in FILLED.items():
        rest = rest.replace(placeholder, value)
    argv = shlex.split(rest)
    if "search=ray-tune" in argv and "..." in argv and not any(a.startswith("model.lr=") for a in argv):
        argv[argv.index("...")] = SPACE  # the search space the doc's earlier command gave
    return [a for a in argv if a != "..."]  # "...": overrides a doc left out


DISTINCT: dict[str, str] = {}  # the overrides -> where they are first shown: one run of each command
for _where, _rest, _error in COMMANDS:
    if _error is None:
        DISTINCT.setdefault(_rest, _where)
CASES = [pytest.param(where, rest, marks=pytest.mark.ray if _kind(rest)[0] in ("search", "ray-jobs") else pytest.mark.slow,
                      id=where[:90])
         for rest, where in DISTINCT.items()]


def _run(argv: list[str], cwd, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "train.py"), *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("where,rest", CASES)
def test_every_documented_command_runs_to_its_end(where, rest, data_md_files, tmp_path):
    kind, why = _kind(rest)
    if kind == "skip":
        pytest.skip(why)
    argv = _argv(rest)
    if kind == "dry-run":
        done = _run([*argv, "launcher.dry_run=true"], tmp_path, timeout=120)
        assert done.returncode == 0, (where, done.stderr[-3000:])
        assert "kind:" in done.stdout and "apiVersion:" in done.stdout, (where, done.stdout[-2000:])
        # A dry run keeps what it rendered in the run dir, and trains nothing.
        assert not list((tmp_path / "outputs").rglob("summary.json")), where
        return
    if "resume=path/to/other.ckpt" in argv:  # the checkpoint of another run, which the reader has
        first = _run(TRAIN, tmp_path)
        assert first.returncode == 0, first.stderr[-3000:]
        [made] = run_dirs(tmp_path / "outputs")
        shutil.copy(made / "checkpoints" / "last.ckpt", tmp_path / "path" / "to" / "other.ckpt")
        shutil.rmtree(tmp_path / "outputs")
    if "hydra.sweeper.resume=true" in argv:  # continues a search that ran before under the same run id
        first = _run([a for a in argv if a != "hydra.sweeper.resume=true"] + SEARCH, tmp_path)
        assert first.returncode == 0, first.stderr[-3000:]
    budget = SEARCH if kind == "search" else DRILL if any(a.startswith("fault=") for a in argv) else TRAIN
    done = _run([*argv, *budget], tmp_path)
    failed = _shown(where)
    said = done.stdout + done.stderr
    assert "Traceback (most recent call last)" not in done.stderr or failed, (where, done.stderr[-3000:])
    if failed:  # a drill the doc shows failing: it fails as shown
        assert done.returncode != 0, where
        assert all(line in said for line in failed), (where, failed, done.stderr[-3000:])
        return
    assert done.returncode == 0, (where, done.stderr[-3000:])
    records = [summary(d) for d in run_dirs(tmp_path / "outputs") if (d / "summary.json").is_file()]
    assert records, (where, "no run dir")
    assert all(r["status"] in ("completed", "stopped") for r in records), (where, [r["status"] for r in records])
