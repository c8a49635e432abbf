"""``callbacks``: Lightning callbacks as ``_target_`` options, checked before the trainer exists.

Each entry must be a class that takes its keys (as ``data``/``model``), watch a metric
the model logs, and be able to run with this config: Lightning refuses a callback that
needs a logger under ``logger=none``, or a ModelCheckpoint that duplicates Aegis's own
best checkpoint, only once the trainer is built, after the run dir exists.
"""

from __future__ import annotations

from typing import Any, Optional

from omegaconf import DictConfig

from aegis.config import where
from aegis.config.rules.components import check_component
from aegis.config.rules.model import check_monitored
from aegis.config.rules.values import plain, read, shown
from aegis.core import logger_kind
from aegis.errors import Problems

CALLBACK_EXAMPLE = "lightning.pytorch.callbacks.EarlyStopping"
# Lightning callbacks that raise at fit start when the trainer has no logger.
NEEDS_LOGGER = ("LearningRateMonitor", "DeviceStatsMonitor")


def _lightning_class(target: Any) -> Optional[str]:
    """The class name of a Lightning callback target (either package's spelling), else None."""
    if not isinstance(target, str) or not target.startswith(("lightning.pytorch.", "pytorch_lightning.")):
        return None
    return target.rpartition(".")[2]


def _duplicates_best_checkpoint(cfg: DictConfig, node: DictConfig) -> bool:
    """A user ModelCheckpoint with the built-in best checkpoint's identity (monitor, mode and
    schedule: Lightning's ``state_key``), which Lightning refuses when the trainer is built."""
    steps, epochs, interval = (node.get(k) for k in ("every_n_train_steps", "every_n_epochs", "train_time_interval"))
    schedule = (0, 1, None) if steps is None and epochs is None and interval is None else (steps or 0, epochs or 0, interval)
    mode = str(getattr(cfg.checkpoint.mode, "value", cfg.checkpoint.mode))
    return (schedule == (0, 1, None) and node.get("monitor") == cfg.checkpoint.monitor
            and str(plain(node.get("mode", "min"))) == mode)


def check(cfg: DictConfig, found: Problems) -> None:
    """``callbacks``: each entry a ``_target_`` node that exists, takes its keys, watches a
    metric the model logs, and can run with this config (a logger, no clash with the
    built-in checkpoints). ``null`` entries are dropped options."""
    callbacks = cfg.get("callbacks")
    if not callbacks:
        return
    cluster = not where.launcher(cfg).trains_here
    for name in callbacks.keys():
        key = f"callbacks.{name}"
        if found.covers(key):
            continue
        node = read(callbacks, name, key)
        if node is None:
            continue
        if not isinstance(node, DictConfig) or not node.get("_target_"):
            given = "" if isinstance(node, DictConfig) else f"={shown(node)}"
            found.add(
                f"{key}{given} has no _target_: expected callbacks={name} to add the option of that name "
                f"(conf/callbacks/{name}.yaml), or +{key}._target_=<import path of a Lightning callback> "
                f"such as {CALLBACK_EXAMPLE}.", key
            )
            continue
        check_component(node, key, CALLBACK_EXAMPLE, cluster, found)
        monitor = node.get("monitor")
        if isinstance(monitor, str):
            check_monitored(cfg, f"{key}.monitor", monitor, found)
        kind = _lightning_class(node._target_)
        if kind in NEEDS_LOGGER and not logger_kind.of(cfg.logger).logs:
            found.add(
                f"{key} ({kind}) logs to the run's logger but logger=none has none: expected logger=mlflow "
                f"or logger=csv, or {key}=null.", key
            )
        if kind == "ModelCheckpoint" and not found.refused("checkpoint") and _duplicates_best_checkpoint(cfg, node):
            found.add(
                f"{key} is a ModelCheckpoint of checkpoint.monitor={cfg.checkpoint.monitor} with the same mode and "
                "schedule as Aegis's best checkpoint, which Lightning refuses to run twice: expected "
                "checkpoint.save_top_k to keep more best checkpoints, or another monitor, mode or every_n_epochs.",
                key,
            )
