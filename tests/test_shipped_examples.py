"""The experiments shipped in conf/experiment/ work as written, for the parent and for the
processes it starts.

A launcher that starts processes (torchrun's ranks, pods, srun tasks) has them re-enter
train.py with the same overrides and ``launcher=local``; an experiment that composes in the
parent but not in its children stopped every rank after the launch (issue 24, item 14).
"""

from __future__ import annotations

import textwrap

import pytest
from hydra import initialize_config_dir

from aegis.cli import one_line_errors, prepare
from aegis.config.validation import problems
from aegis.failures.record import Failure
from aegis.core.rank_notes import NOTES_ENV
from aegis.failures.rank import read_failures
from aegis.failures.triage import gang_failure
from composing import compose as composed
from helpers import CONF, run_train, run_dirs, summary

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def _problems(*overrides: str) -> list[str]:
    """Validation's sentences for ``overrides``, composed as train.py composes them (Hydra
    initialized, its node in the config), so that the launcher's checks can compose the
    children's config too."""
    prepare()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = composed(list(overrides), hydra_config=True)
        return problems(cfg).sentences


def test_every_experiment_is_listed():
    assert {"digits_cnn", "synthetic_ddp", "hpo_mlp"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_validates(experiment):
    assert _problems(f"experiment={experiment}") == []


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_as_the_processes_it_starts_compose_it(experiment):
    """What each rank, pod or task composes: the experiment with launcher=local."""
    prepare()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = composed([f"experiment={experiment}", "launcher=local"])
    assert cfg.launcher.name == "local"


def test_a_config_file_setting_a_launcher_key_is_refused_before_the_gang_starts(tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text(textwrap.dedent("""\
        # @package _global_
        defaults:
          - override /strategy: ddp
          - override /launcher: torchrun
        launcher:
          nproc_per_node: 2
        """))
    found = _problems(f"hydra.searchpath=[file://{tmp_path}]", "experiment=mine")
    assert found == [
        "'experiment/mine' sets launcher.nproc_per_node, which the ranks cannot read: they re-enter train.py "
        "with launcher=local, so set launcher.nproc_per_node on the command line, or in a conf/launcher/ "
        "option that the file selects."
    ]
    # the same key on the command line is the parent's alone: the ranks never see it
    assert _problems("strategy=ddp", "launcher=torchrun", "launcher.nproc_per_node=3") == []


def test_a_ranks_error_line_is_its_cause_in_the_gang_report(tmp_path, monkeypatch, capsys):
    """A rank that stops on an ``Error:`` line (its config) leaves it as its own account."""
    from hydra._internal import utils as hydra_utils

    from aegis.errors import ConfigError

    monkeypatch.setenv(NOTES_ENV, str(tmp_path))
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("TORCHELASTIC_ERROR_FILE", raising=False)
    said = "In 'experiment/x': Key 'nproc_per_node' not in 'LocalLauncherConfig'."

    def compose_in_a_rank():
        raise ConfigError(said)

    with one_line_errors(), pytest.raises(SystemExit) as exited:
        hydra_utils.run_and_report(compose_in_a_rank)
    assert exited.value.code == 1
    assert capsys.readouterr().err.strip() == f"Error: {said}"
    torchrun_saw = [{"rank": 0, "exit_code": 1, "signal": None, "order": 0},
                    {"rank": 1, "exit_code": -15, "signal": "SIGTERM", "order": 1}]
    failure = gang_failure(torchrun_saw, read_failures(tmp_path).get(0, {}), run_dir=tmp_path)
    assert isinstance(failure, Failure) and failure.rank == 0
    assert failure.paragraph() == f"Run failed: rank 0: {said} (exit code 1)"


@pytest.mark.slow
def test_synthetic_ddp_trains_as_a_gang_of_two(tmp_path):
    result = run_train(["experiment=synthetic_ddp", "trainer=smoke", "trainer.max_epochs=1", "logger=csv"],
                       tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    [run_dir] = run_dirs(tmp_path)
    record = summary(run_dir)
    assert record["status"] == "completed" and record["world_size"] == 2, record
