"""The sweeper from the command line, without starting Ray: composition, import cost, errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import REPO, TRAIN, run_train, tier_table

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


@pytest.fixture(scope="module")
def no_ray(tmp_path_factory):
    """The environment of a train.py in which importing Ray fails loudly: a refusal that
    comes before Ray starts stays one line only if nothing imported it."""
    import os

    blocker = tmp_path_factory.mktemp("no_ray")
    (blocker / "ray").mkdir()
    (blocker / "ray" / "__init__.py").write_text("raise ImportError('ray was imported before the checks ended')\n")
    return {"PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


@pytest.mark.parametrize(
    "args, message",
    tier_table([
        (["model.lr=interval(0.1,0.01)"], "Error: model.lr=interval(0.1,0.01) is not a valid search space"),
        (["model.lr=interval(1e-4,x)"], "Error: model.lr=interval(1e-4,x) is not a valid override"),
        (["model.lrr=interval(0.1,0.2)"], "Error: model.lrr=interval(0.1,0.2) cannot be searched: model.lrr is not a "
                                          "key of model (did you mean model.lr?): expected one of "),
        # Every value a trial may draw composes, and a bad one names the allowed values.
        (["model.optimizer=choice(adam,rmsprop)"], "Error: model.optimizer=choice(adam,rmsprop) cannot be searched: "
                                                   "model.optimizer=rmsprop is invalid: expected one of adam, adamw, sgd."),
        (["model.optimizer=choice(adam,rmsprop,sgd)"], "Error: model.optimizer=choice(adam,rmsprop,sgd) cannot be "
                                                       "searched: model.optimizer=rmsprop is invalid"),
        (["model=choice(mlp,nope,cnn)"], "Error: model=choice(mlp,nope,cnn) cannot be searched: model=nope is not an "
                                         "option of the model group: expected one of cnn, mlp."),
        # The sweeper's keys against the model and the machine, before Ray (issue 15, item 4).
        ([LR, "hydra.sweeper.metric=val/f1"], "Error: hydra.sweeper.metric=val/f1 is not a metric MLPClassifier logs "
                                              "during training: expected one of train/loss, train/acc, val/loss, val/acc."),
        ([LR, "model=cnn", "hydra.sweeper.metric=test/acc"], "Error: hydra.sweeper.metric=test/acc is logged by "
                                                             "CNNClassifier only after training"),
        ([LR, "hydra.sweeper.metric=val/loss"], "Error: hydra.sweeper.mode=max with hydra.sweeper.metric=val/loss "
                                                "would pick the trial with the highest loss: expected hydra.sweeper.mode=min."),
        ([LR, "hydra.sweeper.scheduler.name=asha", "trainer.max_epochs=4", "hydra.sweeper.scheduler.grace_period=5"],
         "Error: hydra.sweeper.scheduler.grace_period=5 is beyond trainer.max_epochs=4"),
        ([LR, "hydra.sweeper.scheduler.reduction_factor=1"], "Error: hydra.sweeper.scheduler.reduction_factor=1.0 is "
                                                             "invalid: expected a number > 1."),
        ([LR, "hydra.sweeper.search_alg=hyperopt"], "Error: hydra.sweeper.search_alg='hyperopt' is invalid: expected "
                                                    "one of random, optuna."),
        ([LR, "hydra.sweeper.num_cpus=1", "hydra.sweeper.resources.cpu=2"], "Error: hydra.sweeper.resources.cpu=2 is "
                                                                            "more CPUs than the local Ray has"),
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
    ], default=(0, 3, 6, 15, 16, 17, 20, 22)),
)
def test_a_bad_search_fails_in_one_sentence_before_anything_is_created(tmp_path, no_ray, args, message):
    proc = run_train(["search=ray-tune", *args], tmp_path, timeout=120, env=no_ray)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_metric_is_refused_in_seconds_without_ray_a_sweep_dir_or_a_tracking_run(tmp_path):
    """Issue 15, item 4: it used to start Ray, fail a minute later in a 142-line traceback,
    and leave a sweep dir and a parent MLflow run stuck at RUNNING."""
    import os
    import time

    env = {**os.environ, "AEGIS_OUTPUT_ROOT": str(tmp_path)}
    env.pop("MLFLOW_TRACKING_URI", None)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(TRAIN), "search=ray-tune", LR, "hydra.sweeper.metric=val/f1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert errors == ["Error: hydra.sweeper.metric=val/f1 is not a metric MLPClassifier logs during training: "
                      "expected one of train/loss, train/acc, val/loss, val/acc."]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert not imported & {"ray", "torch", "lightning", "mlflow"}
    assert list(tmp_path.iterdir()) == []  # no sweep dir, no mlflow.db
    assert elapsed < 30


def test_the_sweeper_checks_see_the_trial_config_and_the_machine(compose, monkeypatch):
    """The rules that need the config the trials train, not only hydra.sweeper: a GPU trainer
    with no GPU per trial, more CPUs per trial than the local Ray, and all bad values at once."""
    from aegis.tune import checks

    def sentences(*overrides):
        cfg = compose("search=ray-tune", *overrides, hydra_config=True)
        return checks.check_search(cfg, cfg.hydra)

    assert sentences() == []
    assert sentences("trainer.accelerator=cuda") == [
        "trainer.accelerator=cuda in a search needs a GPU per trial, but hydra.sweeper.resources.gpu=0 gives a trial "
        "none (Ray hides every GPU from it): expected hydra.sweeper.resources.gpu=1, or trainer.accelerator=cpu."]
    monkeypatch.setattr(checks.os, "cpu_count", lambda: 3)
    assert sentences("hydra.sweeper.resources.cpu=4")[0].startswith(
        "hydra.sweeper.resources.cpu=4 is more CPUs than the local Ray has (this machine's 3)")
    assert sentences("hydra.sweeper.resources.cpu=4", "hydra.sweeper.address=auto") == []  # a cluster: Ray decides
    many = sentences("hydra.sweeper.mode=best", "hydra.sweeper.num_samples=0", "hydra.sweeper.search_alg=grid")
    assert [s.split(" ", 1)[0] for s in many] == ["hydra.sweeper.num_samples=0", "hydra.sweeper.mode='best'",
                                                  "hydra.sweeper.search_alg='grid'"]
    # Not a search (no multirun on the Ray Tune sweeper): its keys are never read.
    plain = compose("hydra/sweeper=ray_tune", "hydra.sweeper.metric=val/f1", hydra_config=True)
    assert checks.check_search(plain, plain.hydra) == []


def test_optuna_missing_is_one_sentence(compose, monkeypatch):
    import importlib.util

    from aegis.tune import checks

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "optuna" else real(name, *a))
    cfg = compose("search=ray-tune", "hydra.sweeper.search_alg=optuna", hydra_config=True)
    assert checks.check_search(cfg, cfg.hydra) == [
        "hydra.sweeper.search_alg='optuna' needs the optuna package, which is not installed here: expected pip "
        "install 'aegis[tune]' or hydra.sweeper.search_alg=random."]


@pytest.mark.parametrize("args", tier_table([
    ["launcher=ray-tune", LR, "hydra.sweeper.num_samples=8"],
    ["-m", "launcher=ray-tune", LR],
    ["launcher=ray-tune"],
], default=(0,)))
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


@pytest.mark.parametrize("args, message", tier_table([
    # The experiment selects the search (no -m, no search=): a typo is still reported as itself.
    (["hydra.sweeper.num_sample=4"], "Error: hydra.sweeper.num_sample is not a key of hydra.sweeper (did you mean "
                                     "hydra.sweeper.num_samples?)"),
    (["hydra.sweeper.num_samples=four"], "Error: hydra.sweeper.num_samples=four is invalid: expected a whole number."),
    (["model.optimizer=choice(adam,rmsprop)"], "Error: model.optimizer=choice(adam,rmsprop) cannot be searched: "
                                               "model.optimizer=rmsprop is invalid: expected one of adam, adamw, sgd."),
    (["hydra.sweeper.metric=val/f1"], "Error: hydra.sweeper.metric=val/f1 is not a metric MLPClassifier logs"),
    # Every check passed, the rerun command of best.yaml included (issue 15, item 5): what
    # stops it is the first thing after them, resuming a search that never ran.
    (["hydra.sweeper.resume=true"], "Error: hydra.sweeper.resume=true but no search ran in"),
], default=(2, 4)))
def test_a_search_an_experiment_file_defines_is_checked_like_one_given_as_search(tmp_path, no_ray, args, message):
    proc = run_train(["experiment=hpo_mlp", "trainer=smoke", *args], tmp_path, timeout=120, env=no_ray)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_rerun_command_of_the_hpo_mlp_experiment_composes_as_one_run_of_it(compose):
    """What best.yaml writes for conf/experiment/hpo_mlp.yaml, composed as train.py will."""
    from omegaconf import OmegaConf

    from aegis.config.validation import validate
    from aegis.tune import results
    from aegis.tune.space import parse

    given = ["experiment=hpo_mlp", "trainer=smoke"]
    sweep = compose(*given, hydra_config=True)
    space = parse(given, OmegaConf.to_container(sweep.hydra.sweeper.params))
    unselect = results.search_unselect(sweep.hydra.runtime.choices, given)
    overrides = results.reproduce_overrides(
        space, {"model.lr": 0.0034, "model.dropout": 0.25, "model.hidden_dims": [256, 128]}, unselect)
    assert results.reproduce_command(overrides) == (
        "python train.py experiment=hpo_mlp trainer=smoke '~search' hydra/sweeper=ray_tune model.lr=0.0034 "
        "model.dropout=0.25 'model.hidden_dims=[256,128]'")
    rerun = compose(*overrides, hydra_config=True)
    assert rerun.hydra.mode is None and rerun.hydra.runtime.choices.get("search") is None
    assert (rerun.task_name, rerun.model.lr, list(rerun.model.hidden_dims)) == ("hpo_mlp", 0.0034, [256, 128])
    validate(rerun)


def test_worker_logs_reach_the_terminal_only_with_verbose(monkeypatch):
    """ray.init's log_to_driver follows hydra.sweeper.verbose (Ray itself not started)."""
    import sys
    import types

    from aegis.tune import search, settings

    calls = []
    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(init=lambda **kw: calls.append(kw)))
    base = {"num_samples": 2, "metric": "val/acc", "mode": "max", "search_alg": "random", "max_failures": 0,
            "num_cpus": 2}
    search.start_ray(settings.read(base))
    search.start_ray(settings.read({**base, "verbose": True}))
    assert [c["log_to_driver"] for c in calls] == [False, True]
    assert calls[0]["logging_level"] > calls[1]["logging_level"]  # Ray's own INFO lines only when verbose
