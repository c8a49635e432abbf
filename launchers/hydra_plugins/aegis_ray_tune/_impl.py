"""The sweep itself (private: Hydra's plugin discovery skips ``_`` modules, so the
imports here cost nothing until a search runs).

Order matters: every check (sweeper keys, search-space expressions, a trial config
composed at both ends of the space and validated like a single run, the command that
will rerun the best trial, the resume state) happens before the sweep dir exists or Ray
starts.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, List, Optional

from hydra.core.singleton import Singleton
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from aegis.config.resolvers import register_resolvers
from aegis.config.validation import validate
from aegis.errors import AegisError, ConfigError, error_lines
from aegis.core.context import quote_override
from aegis.tune import settings as tune_settings
from aegis.tune.space import SearchSpace, parse

log = logging.getLogger("aegis.tune")


class SearchFailed(AegisError):
    """A search that crashed more trials than allowed, or produced no result."""


def _probe_params(space: SearchSpace) -> list[dict[str, Any]]:
    """Two points of the space: every dimension's first/lowest and last/highest value."""
    low = {k: d.sample_value() for k, d in space.dims.items()}
    high = {}
    for k, d in space.dims.items():
        if d.values:
            high[k] = d.values[-1]
        else:
            high[k] = int(d.high) - 1 if d.kind == "randint" else d.high
    return [low, high]


# Compositions spent on a search's values before Ray starts (~0.05 s each).
MAX_PROBES = 32


def _probes(space: SearchSpace) -> list[tuple[Optional[str], dict[str, Any]]]:
    """Both ends of the space, then every other value of each choice: a trial may draw any
    of them, and a bad one (``model.optimizer=choice(adam,rmsprop,sgd)``) must fail now, not
    in the one trial that samples it. Each probe is (the key it varies, its params)."""
    low, high = _probe_params(space)
    probes: list[tuple[Optional[str], dict[str, Any]]] = [(None, low), (None, high)]
    for key, dim in space.dims.items():
        for value in dim.values[1:-1]:
            probes.append((key, {**low, key: value}))
    return probes[:MAX_PROBES]


def _check_trials_compose(sweeper: Any, space: SearchSpace, pinned: list[str]) -> None:
    from aegis.config.hydra_errors import sentence

    loader = sweeper.hydra_context.config_loader
    for key, params in _probes(space):
        overrides = space.trial_overrides(params) + pinned
        try:
            cfg = loader.load_sweep_config(sweeper.config, overrides)
        except HydraException as exc:
            reason = sentence(exc) or " ".join(str(exc).split())
            key = key or next((k for k in space.dims if reason.startswith((f"{k}=", f"{k} "))), None)
            where = f"{key}={space.dims[key].source} cannot be searched" if key else \
                "A trial of this search does not compose"
            raise ConfigError(f"{where}: {reason.rstrip('.')}.") from None
        validate(cfg)


def _check_reproducible(sweeper: Any, space: SearchSpace, unselect: list[str]) -> None:
    """best.yaml's command must rerun a trial as one run: compose it now, as train.py will.

    It is the trial's overrides without the search (``results.reproduce_overrides``), in
    RUN mode; a search whose experiment file cannot be composed without it is refused
    here rather than leaving a best.yaml whose command fails.
    """
    from aegis.config.hydra_errors import sentence
    from aegis.tune import results

    overrides = results.reproduce_overrides(space, _probe_params(space)[0], unselect)
    loader = sweeper.hydra_context.config_loader
    try:
        cfg = loader.load_configuration(config_name=sweeper.config.hydra.job.config_name, overrides=overrides,
                                        run_mode=RunMode.RUN)
        if str(cfg.hydra.mode) == str(RunMode.MULTIRUN):
            raise ConfigError("its config sets hydra.mode=MULTIRUN, so it would start a multirun")
        validate(cfg)
    except (HydraException, OmegaConfBaseException, ConfigError) as exc:
        reason = (str(exc) if isinstance(exc, ConfigError) else sentence(exc) or str(exc)).rstrip(".")
        raise ConfigError(
            f"The best trial of this search could not be rerun as one run ({results.reproduce_command(overrides)} "
            f"fails: {reason}): put the search's settings in a conf/search/ option that the command line selects "
            "(search=<name>), not in a file that other options select."
        ) from None


def _flat_params(params: Any, prefix: str = "") -> dict[str, Any]:
    """``params`` as dotted keys: YAML writes ``model.lr: ...``, the command line nests."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        params = OmegaConf.to_container(params, resolve=False)
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat.update(_flat_params(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _entry() -> str:
    script = sys.argv[0]
    if script.endswith(".py") and os.path.isfile(script):
        relative = os.path.relpath(script)
        return relative if not relative.startswith("..") else os.path.abspath(script)
    return "train.py"


def run_sweep(sweeper: Any, arguments: List[str]) -> Any:
    """Like ValidateOnStart: a user's mistake is one ``Error:`` sentence and exit 1."""
    try:
        return _run_sweep(sweeper, arguments)
    except AegisError as exc:
        for line in error_lines(exc):
            print(line, file=sys.stderr)
        sys.exit(1)
    except Exception as exc:
        if type(exc).__name__ != "SearchInterrupted":
            raise
        from aegis.tune.console import interrupted_message

        print(interrupted_message(exc.unfinished, str(sweeper.config.run_id),
                                  list(sweeper.config.hydra.overrides.task)), file=sys.stderr)
        sys.exit(130)


def _hand_off(config: Any) -> Any:
    """A launcher that runs the whole search elsewhere (``launcher=rayjob``: a RayJob whose
    entrypoint is this search on the cluster's Ray) gets it here, checked (ValidateOnStart ran
    its rules) and before anything is created or Ray is imported; None: the search runs here."""
    from aegis.core.registry import get_launcher

    launcher = get_launcher(str(config.launcher.name))
    if not getattr(launcher, "runs_search", False):
        return None
    code = launcher.launch_search(config)
    if code:
        sys.exit(code)
    return {"launcher": launcher.name, "run_id": str(config.run_id)}


def _run_sweep(sweeper: Any, arguments: List[str]) -> Any:
    config = sweeper.config
    register_resolvers()
    settings = tune_settings.check(sweeper.settings)
    space = parse(arguments, _flat_params(sweeper.settings.get("params")))
    if not space.dims:
        raise ConfigError(
            "The search has nothing to search: give at least one key a search space, e.g. "
            "model.lr='tag(log,interval(1e-4,1e-1))' or hydra.sweeper.params.model.lr=..."
        )
    if settings.search_alg == "optuna" and any(d.kind == "grid" for d in space.dims.values()):
        raise ConfigError("hydra.sweeper.search_alg='optuna' cannot search a tag(grid,...) dimension: "
                          "use choice(...) or search_alg=random.")
    handed_off = _hand_off(config)
    if handed_off is not None:
        return handed_off

    sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
    paths_root = Path(str(config.paths.root)).resolve()
    pinned = [f"run_id={quote_override(str(config.run_id))}", f"paths.root={quote_override(str(paths_root))}",
              f"hydra.sweep.dir={quote_override(str(sweep_dir))}"]
    _check_trials_compose(sweeper, space, pinned)
    from aegis.tune import results

    unselect = results.search_unselect(config.hydra.runtime.choices, list(config.hydra.overrides.task))
    _check_reproducible(sweeper, space, unselect)

    from aegis.tune.layout import ray_experiment_dir

    experiment = ray_experiment_dir(sweep_dir)
    if settings.resume and not (experiment / "tuner.pkl").is_file():
        raise ConfigError(
            f"hydra.sweeper.resume=true but no search ran in {sweep_dir}: pass the run_id of the search to "
            "resume (run_id=<id>), or drop hydra.sweeper.resume."
        )
    if not settings.resume and experiment.exists():
        if (sweep_dir / results.BEST_FILE).exists() or not (experiment / "tuner.pkl").is_file():
            raise ConfigError(
                f"A search already ran in {sweep_dir}: start a new one with another run_id (or delete that dir)."
            )
        # An interrupted search (Ctrl+C, a killed driver, a lost head pod): the same command
        # continues it, as a rerun of a killed single run continues from its last.ckpt.
        import dataclasses

        settings = dataclasses.replace(settings, resume=True)
        log.info("Continuing the interrupted search in %s", sweep_dir)

    # Checked; from here on things are created.
    from aegis.tune import search
    from aegis.tune.tracking import fail_parent, finish_parent, mark_outcomes, mark_parent_interrupted, start_parent
    from aegis.tune.trial import TrialJob

    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, sweep_dir / "multirun.yaml")
    parent = start_parent(config, sweep_dir, name=f"search-{config.run_id}")
    job = TrialJob(hydra_context=sweeper.hydra_context, master_config=config, space=space, pinned=pinned,
                   parent_run_id=parent["run_id"] if parent else None, singleton_state=Singleton.get_state(),
                   entrypoint=_entry(), unselect=list(unselect))
    log.info("Ray Tune search: %d trials of %s, sweep dir %s", settings.num_samples,
             ", ".join(f"{k}={d.source}" for k, d in space.dims.items()), sweep_dir)
    try:
        trials, budget = search.run(job, settings, sweep_dir, int(config.trainer.max_epochs))
    except search.SearchInterrupted as interrupted:
        if parent:
            mark_outcomes(interrupted.records, parent, str(config.run_id), sweep_dir)
            mark_parent_interrupted(parent)
        raise
    except KeyboardInterrupt:
        mark_parent_interrupted(parent)
        raise
    except BaseException as exc:  # the parent run must not stay RUNNING with nothing behind it
        fail_parent(parent, exc)
        raise

    from aegis.tune.console import final_table

    lines = final_table(trials, list(space.dims), settings.metric, settings.mode, int(config.trainer.max_epochs),
                        asha=settings.scheduler == "asha")
    print("\n".join(lines), flush=True)
    best = results.pick_best(trials, settings.mode)
    record = None
    files = []
    if best is not None:
        record = results.write_best(sweep_dir, best, space, settings.metric, settings.mode, _entry(),
                                    unselect)
        files.append(sweep_dir / results.BEST_FILE)
        log.info("Best trial %d: %s=%.4f with %s", best.number, settings.metric, record["value"],
                 " ".join(record["overrides"]) or "the defaults")
        log.info("Reproduce it: %s", record["command"])
        log.info("Written: %s", sweep_dir / results.BEST_FILE)
    if settings.plot and any(t.history for t in trials):
        from aegis.tune.plot import write_plot

        files.append(write_plot(sweep_dir, trials, settings.metric, settings.mode, list(space.dims),
                                int(config.trainer.max_epochs)))
        log.info("Written: %s", files[-1])
    failed = [t for t in trials if t.error]
    if parent:
        mark_outcomes(trials, parent, str(config.run_id), sweep_dir)
    finish_parent(parent, record, files, ok=best is not None and not budget.exceeded)
    if budget.exceeded:
        raise SearchFailed(
            f"{len(budget.failed)} trials crashed, more than hydra.sweeper.max_failures={settings.max_failures}, "
            f"so the search stopped; the first: {failed[0].error if failed else budget.failed[0]} "
            f"(its log: {failed[0].log if failed else sweep_dir})."
        )
    if best is None:
        raise SearchFailed(f"No trial reported {settings.metric}: see the trial logs under {sweep_dir}.")
    return record
