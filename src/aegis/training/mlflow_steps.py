"""A continued MLflow run logs each metric at each step once.

A run resumed from ``last.ckpt`` re-runs whatever it did after that checkpoint: the rest of
an epoch that a kill cut short, or an epoch whose checkpoint was written but whose report
to a search was not. Lightning logs those steps again, and MLflow would keep both values
of every re-run step (a metric's history is append-only). ``log_each_step_once`` reads
which steps the run already holds, once, and from then on drops a metric at a step it
already has: the run's history reads as one continuous run, whatever the restarts.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional


def logged_steps(client: Any, run_id: str) -> dict[str, set[int]]:
    """Every metric of the run and the steps it was logged at."""
    keys = client.get_run(run_id).data.metrics.keys()
    return {key: {m.step for m in client.get_metric_history(run_id, key)} for key in keys}


def log_each_step_once(logger: Any) -> None:
    """Wrap a Lightning ``MLFlowLogger`` (of a continued run) so that a (metric, step) the
    run already holds is not logged again."""
    log_metrics = logger.log_metrics
    state: dict[str, dict[str, set[int]]] = {}

    def once(metrics: Mapping[str, float], step: Optional[int] = None) -> None:
        if step is not None:
            if "logged" not in state:
                state["logged"] = logged_steps(logger.experiment, logger.run_id)
            logged = state["logged"]
            metrics = {key: value for key, value in metrics.items() if step not in logged.get(key, ())}
            if not metrics:
                return
        log_metrics(metrics, step)

    logger.log_metrics = once
