"""The metrics a model logs, known before it is built.

A checkpoint's ``monitor`` and a search's ``hydra.sweeper.metric`` must name a metric the
model logs while fitting; finding out by training costs a run (or, in a search, a
minute of Ray and a traceback). Aegis's LightningModules therefore declare what they log
in a literal class attribute, ``LOGGED_METRICS`` (``aegis.training.models.ClassifierModule``),
which is read here from the model's source, never imported: composing and validating
stay free of torch. A user's model that declares nothing is not checked.
"""

from __future__ import annotations

from typing import Any, Optional

from aegis.config.signature import static_class_constant

# Where a model class declares the metric names it logs.
LOGGED_METRICS_ATTR = "LOGGED_METRICS"
# Logged only by ``trainer.test``, after fitting: nothing can monitor or search on them.
AFTER_FIT_PREFIX = "test/"


def logged_metrics(model: Any) -> Optional[list[str]]:
    """Every metric ``model`` (its config node, ``_target_`` naming the class) declares, or
    None when the class declares none (or cannot be read)."""
    target = model.get("_target_") if model is not None else None
    logged = static_class_constant(target, LOGGED_METRICS_ATTR) if isinstance(target, str) else None
    if not isinstance(logged, (list, tuple)):
        return None
    return [str(m) for m in logged]


def during_fit(logged: list[str]) -> list[str]:
    """The metrics of ``logged`` that exist while the model fits (a checkpoint or a search sees them)."""
    return [m for m in logged if not m.startswith(AFTER_FIT_PREFIX)]


def model_name(model: Any) -> str:
    """The class name a sentence names the model by (``MLPClassifier``)."""
    return str(model.get("_target_") or "the model").rpartition(".")[2]


def not_logged(model: Any, key: str, metric: str) -> Optional[str]:
    """The sentence refusing ``key=metric`` when ``model`` declares its metrics and ``metric``
    is not one it logs while fitting; None when it is (or the model declares nothing)."""
    logged = logged_metrics(model)
    if logged is None:
        return None
    fitting = during_fit(logged)
    if metric in fitting:
        return None
    name = model_name(model)
    what = f"is logged by {name} only after training" if metric in logged else \
        f"is not a metric {name} logs during training"
    return f"{key}={metric} {what}: expected one of {', '.join(fitting)}."
