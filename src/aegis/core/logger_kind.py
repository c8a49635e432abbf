"""What the ``logger`` option can do, read once from its config, so shared code asks that.

A logger is one of Aegis's own options (``logger=mlflow``, ``csv``, ``none``: a ``name``
and a schema) or any Lightning logger by its class (a ``_target_`` node, like a callback:
``conf/logger/lightning.yaml``). Code that validates, trains, submits pods or runs a
search asks the option what it does: whether Aegis's MLflow layer runs for it (store
preparation, run resume by tag, async metrics, lineage, checkpoint artifacts, the model
registry, the pods' tracking notice, failure tags) and whether the trainer gets a logger
at all (Lightning's ``LearningRateMonitor`` refuses to run without one). Comparing the
option's name in each of those places made the set of loggers closed.

Torch-free: validation, the Kubernetes plumbing and the failure tags read it on the
launch path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

MLFLOW = "mlflow"
CSV = "csv"
NONE = "none"
#: Arguments of a logger given by class that Aegis sets to the run dir when the class takes
#: one and the config leaves it out (or null), so its files land with the run's, on every
#: launcher, resumed or not. A value in the config is used as given.
RUN_DIR_ARGS = ("save_dir", "root_dir")
#: What the sentences offer as a logger class.
EXAMPLE = "lightning.pytorch.loggers.CSVLogger"


@dataclass(frozen=True)
class LoggerKind:
    #: ``mlflow``, ``csv``, ``none``, or the ``_target_`` of a logger given by class.
    name: str
    #: Aegis's MLflow layer runs: store, lineage, registry, checkpoint artifacts, resume by tag.
    mlflow: bool = False
    #: The trainer gets a Lightning logger (on rank 0).
    logs: bool = False
    #: The import path of a logger given by class (``logger._target_``), else None.
    target: Optional[str] = None


def of(logger: Any) -> LoggerKind:
    """The kind of a ``logger`` config node (a DictConfig or a mapping; None: no logger).

    A ``_target_`` wins over ``name``: for a Lightning logger ``name`` is its own argument
    (CSVLogger's and TensorBoardLogger's experiment name), not an Aegis option."""
    if logger is None:
        return LoggerKind(NONE)
    target = logger.get("_target_") if hasattr(logger, "get") else None
    if isinstance(target, str) and target:
        return LoggerKind(target, logs=True, target=target)
    name = logger.get("name") if hasattr(logger, "get") else None
    if name == MLFLOW:
        return LoggerKind(MLFLOW, mlflow=True, logs=True)
    if name == CSV:
        return LoggerKind(CSV, logs=True)
    return LoggerKind(str(name) if name else NONE)
