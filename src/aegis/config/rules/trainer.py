"""``trainer``: epochs and batch limits that Lightning would refuse, or silently run empty, at fit time.

``min_epochs`` above ``max_epochs``, a ``limit_*_batches`` fraction that rounds down to
no batch, and a ``val_check_interval`` longer than an epoch are counted here from the
data's known size (``data``), before the run dir exists.
"""

from __future__ import annotations

import math
from typing import Any

from omegaconf import DictConfig

from aegis.config.rules.data import DATA_SIZE_KEYS, data_size, split_sizes
from aegis.errors import Problems


def _batches(batches: int, limit: Any) -> int:
    """Batches per epoch in one process after Lightning's ``limit_*_batches`` (an upper
    bound under DDP, where each rank gets a share)."""
    if isinstance(limit, int) and not isinstance(limit, bool):
        return min(batches, limit)
    return int(batches * limit)


def check(cfg: DictConfig, found: Problems) -> None:
    """Epoch bounds in order, and batch limits and validation intervals that fit the data."""
    trainer = cfg.trainer
    if (trainer.get("min_epochs") is not None and not found.refused("trainer.min_epochs", "trainer.max_epochs")
            and trainer.min_epochs > trainer.max_epochs):
        found.add(
            f"trainer.min_epochs={trainer.min_epochs} exceeds trainer.max_epochs={trainer.max_epochs}: "
            "expected min_epochs <= max_epochs.", "trainer.min_epochs"
        )
    if found.refused(*DATA_SIZE_KEYS, "data.batch_size", "trainer.fast_dev_run", "trainer.overfit_batches"):
        return
    size = data_size(cfg.data)
    if size is None or trainer.get("fast_dev_run") or trainer.get("overfit_batches"):
        return  # both replace the epoch's batches with their own
    splits = split_sizes(size[0], cfg.data.val_fraction, cfg.data.test_fraction)
    full = {split: math.ceil(count / cfg.data.batch_size) for split, count in splits.items()}
    _check_limits(cfg, full, found)
    _check_val_check_interval(cfg, full["train"], found)


def _check_limits(cfg: DictConfig, full: dict[str, int], found: Problems) -> None:
    """A fraction of a split that rounds down to no batch: Lightning refuses it at fit time."""
    for split, batches in full.items():
        limit = cfg.trainer.get(f"limit_{split}_batches", 1.0)
        if found.refused(f"trainer.limit_{split}_batches"):
            continue
        if isinstance(limit, float) and 0 < limit < 1 and _batches(batches, limit) == 0:
            least = math.ceil(1000 / batches) / 1000
            found.add(
                f"trainer.limit_{split}_batches={limit} of the {batches} {split} batches of "
                f"data={cfg.data.get('name')} is less than one batch: expected at least {least:g}, a whole "
                "number of batches, or 0 to skip it.", f"trainer.limit_{split}_batches"
            )


def _check_val_check_interval(cfg: DictConfig, train_batches: int, found: Problems) -> None:
    """A whole number of batches between validations must fit in an epoch (Lightning's rule)."""
    trainer = cfg.trainer
    if found.refused("trainer.val_check_interval", "trainer.limit_train_batches", "trainer.limit_val_batches"):
        return
    interval = trainer.get("val_check_interval")
    if not isinstance(interval, int) or isinstance(interval, bool) or trainer.get("limit_val_batches") == 0:
        return
    batches = _batches(train_batches, trainer.get("limit_train_batches", 1.0))
    if interval > batches:
        found.add(
            f"trainer.val_check_interval={interval} exceeds the {batches} training batches per epoch of "
            f"data={cfg.data.get('name')}: expected at most {batches} batches, or a fraction of an epoch "
            "such as 0.5.", "trainer.val_check_interval"
        )
