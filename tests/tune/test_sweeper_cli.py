"""The sweeper from the command line, without starting Ray: composition, import cost, errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import REPO, TRAIN, run_train

LR = "model.lr=tag(log,interval(1e-4,1e-1))"
IMAGE = "registry.example.com/aegis:0.1.0"  # cluster launchers need one (no default image)


def test_search_ray_tune_turns_on_multirun_and_the_sweeper(compose):
    cfg = compose("search=ray-tune", hydra_config=True)
    assert cfg.launcher.name == "local" and "search" not in cfg  # a search lives in hydra.*, not in the job
    assert cfg.hydra.runtime.choices.search == "ray-tune"
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.aegis_ray_tune.ray_tune_sweeper.RayTuneSweeper"
    assert cfg.hydra.sweeper.metric == "val/acc" and cfg.hydra.sweeper.mode == "max"

    plain = compose("hydra/sweeper=ray_tune", "hydra.sweeper.scheduler.name=asha", hydra_config=True)
    assert plain.launcher.name == "local" and plain.hydra.sweeper.scheduler.name == "asha"


def test_composing_a_search_never_imports_torch_lightning_or_ray(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(TRAIN), "search=ray-tune", "--cfg", "hydra"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    heavy = [line for line in proc.stderr.splitlines() if line.rstrip().endswith((" torch", " lightning", " ray"))]
    assert heavy == []
    assert "RayTuneSweeper" in proc.stdout and "mode: MULTIRUN" in proc.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["model.lr=interval(0.1,0.01)"], "Error: model.lr=interval(0.1,0.01) is not a valid search space"),
        (["model.lr=interval(1e-4,x)"], "Error: model.lr=interval(1e-4,x) is not a valid override"),
        (["model.lrr=interval(0.1,0.2)"], "Error: A trial of this search does not compose: Could not override 'model.lrr'"),
        (["model.lr=interval(-1,1)"], "Error: model.lr=-1.0 is invalid: expected a number > 0."),
        (["model.lr=1,2", "hydra.sweeper.scheduler.name=pbt"], "Error: hydra.sweeper.scheduler.name='pbt' is invalid"),
        (["model.lr=1,2", "hydra.sweeper.resume=true"], "Error: hydra.sweeper.resume=true but no search ran in"),
        (["trainer=smoke"], "Error: The search has nothing to search"),
        # Without -m: the search turns multirun on itself, and a mistake next to a search
        # space is reported as itself, not as "... requires --multirun".
        ([LR, "hydra.sweeper.num_sample=4"], "Error: hydra.sweeper.num_sample is not a key of hydra.sweeper "
                                             "(did you mean hydra.sweeper.num_samples?)"),
        ([LR, "hydra.sweeper.num_samples=four"], "Error: hydra.sweeper.num_samples=four is invalid: expected a whole"),
        ([LR, "launcher=nope"], "Error: launcher=nope is not an option of the launcher group"),
        # Modes and launchers a search cannot use.
        (["hydra.mode=RUN"], "Error: search=ray-tune runs as a multirun (it turns multirun on itself) but "
                             "hydra.mode=RUN asks for a single run"),
        ([LR, "hydra.mode=RUN"], f"Error: {LR} is a sweep, which only a multirun runs"),
        ([LR, "launcher=k8s-job", f"launcher.image={IMAGE}"], "Error: search=ray-tune trains each trial in-process in a Ray worker, so it runs "
                                   "with launcher=local (here) or launcher=rayjob (a Ray cluster in Kubernetes), not "
                                   "launcher=k8s-job"),
        ([LR, "launcher=pytorchjob", "strategy=ddp", f"launcher.image={IMAGE}"], "Error: search=ray-tune trains each trial in-process"),
        ([LR, "launcher=torchrun"], "Error: search=ray-tune trains each trial in-process"),
        ([LR, "hydra/launcher=submitit_local"], "Error: search=ray-tune runs its trials on Ray Tune itself, never "
                                                "through hydra/launcher=submitit_local"),
        ([LR, "strategy=ddp", "strategy.devices=2"], "Error: strategy.devices=2 needs one process per device"),
    ],
)
def test_a_bad_search_fails_in_one_sentence_before_anything_is_created(tmp_path, args, message):
    proc = run_train(["search=ray-tune", *args], tmp_path, timeout=120)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [
    ["launcher=ray-tune", LR, "hydra.sweeper.num_samples=8"],
    ["-m", "launcher=ray-tune", LR],
    ["launcher=ray-tune"],
])
def test_the_old_launcher_spelling_names_the_new_one(tmp_path, args):
    proc = run_train(args, tmp_path, timeout=120)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: launcher=ray-tune is now search=ray-tune: "), proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_search_runs_only_with_the_local_launcher_and_hydras_basic_one(compose):
    """The rule behind the refusals above, also for the low-level spelling -m hydra/sweeper=ray_tune."""
    from hydra.types import RunMode
    from omegaconf import open_dict

    from aegis.config.validation import validate
    from aegis.errors import ConfigError

    validate(compose("search=ray-tune", hydra_config=True))
    plain = compose("hydra/sweeper=ray_tune", "launcher=k8s-job", f"launcher.image={IMAGE}", hydra_config=True)
    validate(plain)  # not a multirun: the sweeper is never called
    with open_dict(plain):
        plain.hydra.mode = RunMode.MULTIRUN
    with pytest.raises(ConfigError, match=r"^hydra/sweeper=ray_tune trains each trial in-process .* not launcher=k8s-job"):
        validate(plain)


def test_best_yaml_reruns_a_search_an_experiment_selected_without_selecting_it_again(compose, tmp_path):
    """An experiment that selects the search: the rerun drops it with ~search and keeps the
    experiment's hydra.sweeper keys composing; a search given as search=... is just left out."""
    from omegaconf import OmegaConf

    from aegis.config.validation import validate
    from aegis.tune import results
    from aegis.tune.space import parse

    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "hpo_t.yaml").write_text(
        "# @package _global_\n"
        "defaults:\n  - override /search: ray-tune\n"
        "task_name: hpo_t\n"
        "hydra:\n  sweeper:\n    num_samples: 3\n    params:\n      model.lr: tag(log,interval(1e-4,1e-1))\n"
    )
    searchpath = f"hydra.searchpath=[file://{tmp_path}]"
    sweep = compose(searchpath, "experiment=hpo_t", "trainer=smoke", hydra_config=True)
    assert str(sweep.hydra.mode) == "RunMode.MULTIRUN"
    space = parse(["experiment=hpo_t", "trainer=smoke"], OmegaConf.to_container(sweep.hydra.sweeper.params))
    unselect = results.search_unselect(sweep.hydra.runtime.choices, ["experiment=hpo_t", "trainer=smoke"])
    assert unselect == ["~search", "hydra/sweeper=ray_tune"]
    overrides = results.reproduce_overrides(space, {"model.lr": 0.003}, unselect)
    assert overrides == ["experiment=hpo_t", "trainer=smoke", "~search", "hydra/sweeper=ray_tune", "model.lr=0.003"]

    rerun = compose(searchpath, *overrides, hydra_config=True)
    assert rerun.hydra.mode is None and rerun.hydra.runtime.choices.get("search") is None  # one run, no search
    assert rerun.model.lr == 0.003 and rerun.task_name == "hpo_t"
    validate(rerun)

    given = compose("search=ray-tune", "trainer=smoke", hydra_config=True)
    assert results.search_unselect(given.hydra.runtime.choices, ["search=ray-tune", "trainer=smoke"]) == []
    space = parse(["search=ray-tune", "trainer=smoke"], {"model.lr": "interval(1e-4,1e-1)"})
    assert results.reproduce_overrides(space, {"model.lr": 0.01}) == ["trainer=smoke", "model.lr=0.01"]


def test_a_search_kept_in_conf_search_passes_every_check_before_ray(tmp_path):
    """conf/search/digits_mlp.yaml: its space composes at both ends and its rerun command
    composes as one run; resume=true with no earlier search is the first thing it refuses."""
    proc = run_train(["search=digits_mlp", "trainer=smoke", "hydra.sweeper.resume=true"], tmp_path, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("Error: hydra.sweeper.resume=true but no search ran in"), proc.stderr
    assert list(tmp_path.iterdir()) == []
