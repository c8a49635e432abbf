"""Run a search on Ray Tune: connect or start Ray, build the Tuner, collect the trials.

Ray's experiment state lives in ``<sweep dir>/ray`` (an absolute storage path, as Ray
Tune 2.60 requires), beside the trials' run dirs, so ``Tuner.restore`` can continue an
interrupted search from there without redoing finished trials.
"""

from __future__ import annotations

import logging
import os
import re
import signal
from pathlib import Path
from typing import Any, Optional

from aegis.errors import AegisError
from aegis.tune import console
from aegis.tune.results import TrialRecord
from aegis.tune.settings import Settings
from aegis.tune.layout import RAY_DIR, ray_experiment_dir, trial_number
from aegis.tune.trial import TrialJob, run_trial, sampled

log = logging.getLogger("aegis.tune")

class FailureBudget:
    """Counts crashed trials; past ``max_failures`` it stops the whole search.

    Ray's own ``FailureConfig.max_failures`` retries one trial; a search wants to go on
    past a bad point in the space, up to a budget across all trials. A resumed search runs
    with the copy Ray Tune pickled with the search (``tuner.pkl``), whose count Ray Tune
    restores through the callback's state; the driver recounts from the results.
    """

    def __init__(self, max_failures: int, sweep_dir: Optional[Path] = None) -> None:
        from ray.tune import Callback, Stopper

        budget = self

        class _Count(Callback):
            def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
                budget.failed.append(trial.trial_id)
                number = trial_number(trial.config)
                where = budget.sweep_dir / str(number) / "train.log" if budget.sweep_dir and number is not None \
                    else trial.trial_id
                log.warning("Trial %s crashed (%d of %d tolerated); its log: %s", number, len(budget.failed),
                            budget.max_failures, where)

            def get_state(self) -> Optional[dict]:
                return {"failed": list(budget.failed)}

            def set_state(self, state: dict) -> None:
                budget.failed = list(state.get("failed") or [])

        class _Stop(Stopper):
            def __call__(self, trial_id: str, result: dict) -> bool:
                return False

            def stop_all(self) -> bool:
                return budget.exceeded

        self.max_failures = max_failures
        self.sweep_dir = sweep_dir
        self.failed: list[str] = []
        self.callback = _Count()
        self.stopper = _Stop()

    @property
    def exceeded(self) -> bool:
        return len(self.failed) > self.max_failures


def _result_loggers() -> list[Any]:
    """result.json and progress.csv per trial: what ``metrics_dataframe`` (and the plot) read."""
    from aegis.tune.result_files import ContinuedCSVLogger, ContinuedJsonLogger

    return [ContinuedJsonLogger(), ContinuedCSVLogger()]


def _scheduler(s: Settings, max_epochs: int) -> Any:
    """Always one of ``aegis.tune.numbering``'s: they number the trials."""
    from aegis.tune.numbering import NumberedFIFO, ResumableASHA
    from aegis.tune.progress import EPOCH

    if s.scheduler == "fifo":
        return NumberedFIFO()
    # ASHA's clock is the trial's epoch index, which a resumed trial continues (Ray's
    # training_iteration is only right as long as Ray restores the trial). It stops a trial
    # at its report with epoch >= max_t: one past the last epoch by default, so a trial that
    # survives every rung ends on its own (fit, test, summary) rather than being stopped
    # at its final report.
    return ResumableASHA(time_attr=EPOCH, max_t=s.max_t or max_epochs + 1,
                         grace_period=s.grace_period, reduction_factor=s.reduction_factor)


def _search_alg(s: Settings) -> Any:
    if s.search_alg == "optuna":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        if not s.verbose:  # its "[I ...] A new study created in memory" line is no news to the user
            optuna.logging.set_verbosity(optuna.logging.WARNING)
        return OptunaSearch(seed=s.seed)
    from ray.tune.search import BasicVariantGenerator

    # Given here: Ray Tune applies max_concurrent_trials only to a generator it makes itself.
    return BasicVariantGenerator(random_state=s.seed, max_concurrent=s.max_concurrent_trials or 0)


def start_ray(s: Settings) -> None:
    import ray

    env = {"RAY_CHDIR_TO_TRIAL_DIR": "0"}  # trials resolve paths as the driver does
    # Workers' logs stay in the trials' train.log (Hydra's job logging in each run dir), off
    # the terminal; hydra.sweeper.verbose=true shows them there too, with Ray's own messages.
    quiet = {"log_to_driver": s.verbose, "logging_level": logging.INFO if s.verbose else logging.ERROR}
    if s.address is None:
        os.environ.update(env)  # the local Ray's workers inherit this process's environment
        ray.init(num_cpus=s.num_cpus or os.cpu_count(), include_dashboard=False, **quiet)
    else:
        try:
            ray.init(address=s.address, runtime_env={"env_vars": env}, **quiet)
        except (ConnectionError, TimeoutError, RuntimeError) as exc:
            raise RayUnreachable(
                f"hydra.sweeper.address={s.address!r} could not be reached ({type(exc).__name__}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'no detail'}): expected the address of a "
                "running Ray cluster (ray://<head>:10001 from outside it, auto on one of its nodes), or drop "
                "hydra.sweeper.address to search on a Ray started here."
            ) from None


def quiet_trial_errors(verbose: bool) -> None:
    """A crashed trial is one line on the console (``FailureBudget``'s, naming its train.log),
    not Ray Tune's: its controller logs every trial error with the worker's whole traceback
    (~80 lines, with the worker's colour codes) unless ``TUNE_PRINT_ALL_TRIAL_ERRORS=0``, and
    ``ray.tune.tune`` ends with "Trials did not complete: [...]". The cause is in the trial's
    train.log, its summary.json and the final table; ``hydra.sweeper.verbose=true`` shows Ray's."""
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "1" if verbose else "0")
    if not verbose:
        logging.getLogger("ray.tune.tune").setLevel(logging.CRITICAL)


def run(job: TrialJob, s: Settings, sweep_dir: Path, max_epochs: int) -> tuple[list[TrialRecord], FailureBudget]:
    import ray
    from ray import tune

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray Tune's new-style output ignores a progress_reporter; the legacy path calls ours
    # (aegis.tune.console) and prints nothing else at verbose=1.
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no TensorBoard files nobody asked for
    quiet_trial_errors(s.verbose)
    # Ray Tune saves its experiment state after every trial checkpoint (num_to_keep=1) and
    # otherwise every 10 s or more; a kill -9 of the driver loses what happened since. Every
    # 2 s bounds that for trials that started but have not reported yet.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    budget = FailureBudget(s.max_failures, sweep_dir)
    start_ray(s)
    try:
        trainable = tune.with_resources(tune.with_parameters(run_trial, job=job), {"cpu": s.cpu, "gpu": s.gpu})
        experiment = ray_experiment_dir(sweep_dir)
        if s.resume:
            tuner = tune.Tuner.restore(str(experiment), trainable=trainable, resume_unfinished=True,
                                       resume_errored=False, restart_errored=False)
        else:
            reporter = console.make_reporter(list(job.space.dims), s.metric, s.mode, s.num_samples, max_epochs,
                                             asha=s.scheduler == "asha")
            tuner = tune.Tuner(
                trainable,
                param_space=job.space.to_ray(),
                tune_config=tune.TuneConfig(
                    metric=s.metric, mode=s.mode, num_samples=s.num_samples, scheduler=_scheduler(s, max_epochs),
                    search_alg=_search_alg(s),
                    # BasicVariantGenerator limits itself (_search_alg); Ray wants the limit only for a Searcher.
                    max_concurrent_trials=None if s.search_alg == "random" else s.max_concurrent_trials,
                    reuse_actors=True,  # a worker imports torch once, not once per trial
                ),
                run_config=tune.RunConfig(
                    name=RAY_DIR, storage_path=str(sweep_dir), stop=budget.stopper, callbacks=[budget.callback, *_result_loggers()],
                    failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
                    progress_reporter=reporter, verbose=1,
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                ),
            )
        previous = signal.signal(signal.SIGTERM, _as_sigint)
        try:
            grid = tuner.fit()
        finally:
            signal.signal(signal.SIGTERM, previous)
    finally:
        # Before the trials' records are completed: a trial Ray Tune stopped (an interrupt)
        # may still be writing its own record ("stopped") in its worker, which Ray stops
        # without waiting for it; shutting Ray down ends the workers of a local Ray.
        ray.shutdown()
    # Every session's crashes (a resumed search's driver saw only its own).
    budget.failed = [(r.metrics or {}).get("trial_id") or _trial_id_from_path(r.path) for r in grid if r.error]
    unfinished = set() if budget.exceeded else _unfinished(experiment)
    records = _records(grid, s.metric, sweep_dir, unfinished)
    if unfinished:
        raise SearchInterrupted(len(unfinished), records)
    return records, budget


class RayUnreachable(AegisError):
    """The Ray cluster ``hydra.sweeper.address`` names did not answer: the user's input, said in
    one sentence (Ray's own error is a client timeout warning and a traceback)."""


class SearchInterrupted(Exception):
    """Ray Tune saved its state and returned before every trial ended (Ctrl+C, SIGTERM)."""

    def __init__(self, unfinished: int, records: Optional[list[TrialRecord]] = None) -> None:
        super().__init__(unfinished)
        self.unfinished = unfinished
        self.records = records or []


def _as_sigint(signum: int, frame: Any) -> None:
    """SIGTERM (a preempted driver pod, scancel) takes Tune's Ctrl+C path: save state, return."""
    os.kill(os.getpid(), signal.SIGINT)


def _unfinished(experiment: Path) -> set[str]:
    """The ids of trials that neither ended (finished, or stopped by the scheduler) nor crashed.

    After Ctrl+C Ray Tune marks every trial TERMINATED in memory, having saved their real
    state to disk first, so the statuses are read back from there. (The last result's
    ``done`` cannot tell either: Ray Tune sets it on a copy of the result it has already
    saved once a trial reports checkpoints.)
    """
    from ray.tune import ExperimentAnalysis
    from ray.tune.experiment import Trial

    trials = ExperimentAnalysis(str(experiment)).trials
    return {t.trial_id for t in trials if t.status not in (Trial.TERMINATED, Trial.ERROR)}


def _trial_id_from_path(path: str) -> str:
    """Ray's trial dirs are named ``<trainable>_<trial id>_<index>_<params>_<time>``."""
    found = re.search(r"_([0-9a-f]{5}_\d{5}|[0-9a-f]{8})(?:_|$)", Path(path).name)
    return found.group(1) if found else Path(path).name


def _history(frame: Optional[Any], metric: str) -> list[tuple[int, float]]:
    """(epoch, metric) per reported epoch, by the trial's epoch index; an epoch reported
    twice (re-run after a kill of the search) counts once, the last time."""
    if frame is None or metric not in frame.columns:
        return []
    epochs = frame["epoch"] if "epoch" in frame.columns else frame["training_iteration"]
    found: dict[int, float] = {}
    for epoch, value in zip(epochs, frame[metric]):
        if epoch == epoch and value == value:  # not NaN
            found[int(epoch)] = float(value)
    return sorted(found.items())


def _records(grid: Any, metric: str, sweep_dir: Path, unfinished: Optional[set[str]] = None) -> list[TrialRecord]:
    from aegis.tune.outcomes import await_workers, trial_outcome

    def identity(result: Any) -> tuple[str, Optional[int], Optional[Path]]:
        trial_id = (result.metrics or {}).get("trial_id") or _trial_id_from_path(result.path)
        number = trial_number(result.config or {})
        return trial_id, number, (sweep_dir / str(number) if number is not None else None)

    trials = [(result, *identity(result)) for result in grid]
    # The record the driver completes is the last word on a trial that was cut short.
    await_workers([run_dir for _, trial_id, _, run_dir in trials
                   if run_dir is not None and trial_id in (unfinished or set())])
    records = []
    for result, trial_id, number, run_dir in trials:
        done = trial_id not in (unfinished or set())
        history = _history(result.metrics_dataframe, metric)
        record = TrialRecord(trial_id=trial_id, number=number if number is not None else -1,
                             params=sampled(result.config or {}), history=history, run_dir=run_dir)
        trial_outcome(record, result.error, done=done, interrupted=not done)
        records.append(record)
    return records
