"""The data's own sizes: fractions that leave training data, and splits the stratified split can make.

For data whose size is known before loading it (the digits set; synthetic data, which
states its size in its keys), ``data.num_classes``, ``data.input_shape`` and each split's
size are checked here rather than by scikit-learn or Lightning at fit time. The sizes
are shared with the trainer's rules (``trainer``), which count batches from them.
"""

from __future__ import annotations

import math
from typing import Optional

from omegaconf import DictConfig

from aegis.config.rules.values import shown
from aegis.errors import Problems

# Data whose size is known before loading it: _target_ -> (samples, values per sample, classes).
# Synthetic data states its own size in its keys.
KNOWN_DATA = {"aegis.training.data.DigitsDataModule": (1797, 64, 10)}
SYNTHETIC_DATA = "aegis.training.data.SyntheticDataModule"
# What the size of the data depends on: a check of the sizes is skipped when one was refused.
DATA_SIZE_KEYS = ("data._target_", "data.num_samples", "data.num_features", "data.num_classes",
                  "data.val_fraction", "data.test_fraction")


def data_size(data: DictConfig) -> Optional[tuple[int, int, int]]:
    """(samples, values per sample, classes) when the data says so before it is loaded."""
    target = data.get("_target_")
    if target in KNOWN_DATA:
        return KNOWN_DATA[target]
    if target == SYNTHETIC_DATA:
        sizes = tuple(data.get(key) for key in ("num_samples", "num_features", "num_classes"))
        return sizes if all(isinstance(size, int) for size in sizes) else None  # another option's keys
    return None


def split_sizes(samples: int, val_fraction: float, test_fraction: float) -> dict[str, int]:
    """The split sizes of ``ArrayDataModule.setup``: two scikit-learn ``train_test_split``s,
    each putting ``ceil(fraction * n)`` samples in its test side."""
    test = math.ceil(test_fraction * samples)
    rest = samples - test
    val = math.ceil(val_fraction / (1.0 - test_fraction) * rest)
    return {"train": rest - val, "val": val, "test": test}


def check(cfg: DictConfig, found: Problems) -> None:
    """The fractions leave training data, and the data's known size fits its classes and shape."""
    data = cfg.data
    if found.refused("data.val_fraction", "data.test_fraction"):
        return
    val, test = data.get("val_fraction"), data.get("test_fraction")
    if isinstance(val, (int, float)) and isinstance(test, (int, float)) and val + test >= 1:
        found.add(
            f"data.val_fraction + data.test_fraction = {val + test:g} leaves no training data: "
            "their sum must be below 1.", "data.val_fraction", "data.test_fraction"
        )
        return
    if found.refused(*DATA_SIZE_KEYS):
        return
    size = data_size(data)
    if size is None or not isinstance(val, (int, float)) or not isinstance(test, (int, float)):
        return
    samples, values, classes = size
    name = data.get("name")
    if data.get("num_classes") != classes:
        found.add(
            f"data.num_classes={data.num_classes} does not match data={name}, which has {classes} classes: "
            f"expected data.num_classes={classes}.", "data.num_classes"
        )
    shape = list(data.get("input_shape") or [])
    if shape and not found.refused("data.input_shape") and math.prod(shape) != values:
        found.add(
            f"data.input_shape={shown(shape)} holds {math.prod(shape)} values but each data={name} sample has "
            f"{values}: expected a shape whose product is {values}.", "data.input_shape"
        )
    fractions = {"train": f"data.val_fraction={val} with data.test_fraction={test}",
                 "val": f"data.val_fraction={val}", "test": f"data.test_fraction={test}"}
    for split, count in split_sizes(samples, val, test).items():
        if count < classes:
            found.add(
                f"{fractions[split]} leaves the {split} split of data={name} ({samples} samples) {count} samples, "
                f"fewer than its {classes} classes, which the stratified split needs: expected a split of at least "
                f"{classes} samples (more data.num_samples or a different fraction).",
                "data.val_fraction" if split == "val" else "data.test_fraction" if split == "test" else None,
            )
            return  # one split too small is one sentence; the others follow from the same sizes
