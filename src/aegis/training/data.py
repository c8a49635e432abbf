"""Data modules for in-memory classification data.

Both ship with the install (no download): scikit-learn's handwritten digits are real
data that reach a real accuracy offline; the synthetic set has its size and shape as
config keys, for benchmarks and size sweeps. Splits are stratified and seeded, so every
rank and every restart sees the same train/val/test partition.

The loaders serve whole batches by indexing the split tensors (``aegis.training.batches``):
no per-sample ``__getitem__``, no collate, on the accelerator when there is one, sharded
per rank as DistributedSampler would. ``data.num_workers > 0`` and ``overfit_batches``
take torch's classic ``DataLoader`` instead, as does ``AEGIS_CLASSIC_DATALOADER=1``, which
exists for ``bench/data_path.py``'s before/after comparison.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Optional, Sequence

import lightning.pytorch as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from aegis.training.batches import TensorBatches

log = logging.getLogger("aegis.training")

CLASSIC_ENV = "AEGIS_CLASSIC_DATALOADER"


class ArrayDataModule(L.LightningDataModule):
    """Split ``(features, labels)`` arrays into loaders; subclasses provide ``load``.

    Every argument is required here: each concrete module spells out its own defaults,
    equal to its config schema's (``aegis.config.schema``), so no number lives in a base
    class where it would hold for one dataset and not another.
    """

    def __init__(
        self,
        *,
        batch_size: int,
        val_fraction: float,
        test_fraction: float,
        num_workers: int,
        split_seed: int,
        num_classes: int,
        input_shape: Sequence[int],
        name: Optional[str] = None,
        uses_dataset_cache: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.input_shape = tuple(input_shape)
        self._splits: Optional[dict[str, TensorDataset]] = None

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def setup(self, stage: Optional[str] = None) -> None:
        if self._splits is not None:
            return
        from sklearn.model_selection import train_test_split

        features, labels = self.load()
        hp = self.hparams
        try:
            rest_x, test_x, rest_y, test_y = train_test_split(
                features, labels, test_size=hp.test_fraction, random_state=hp.split_seed, stratify=labels
            )
            val_share = hp.val_fraction / (1.0 - hp.test_fraction)
            train_x, val_x, train_y, val_y = train_test_split(
                rest_x, rest_y, test_size=val_share, random_state=hp.split_seed, stratify=rest_y
            )
        except ValueError as exc:  # too few samples (per class) for a stratified split: data known only now
            raise _unsplittable(self.described(), labels, hp.val_fraction, hp.test_fraction, exc) from None
        self._splits = {
            "train": self._dataset(train_x, train_y),
            "val": self._dataset(val_x, val_y),
            "test": self._dataset(test_x, test_y),
        }

    def described(self) -> str:
        """The data as the user named it, for a sentence about it."""
        return f"data={self.hparams.name}" if self.hparams.get("name") else type(self).__name__

    def _dataset(self, x: np.ndarray, y: np.ndarray) -> TensorDataset:
        features = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).reshape(-1, *self.input_shape)
        return TensorDataset(features, torch.from_numpy(y.astype(np.int64)))

    def _loader(self, split: str, shuffle: bool) -> Any:
        assert self._splits is not None, "setup() runs before the loaders are asked for"
        if self._classic_reason() is None:
            return self._batches(split, shuffle)
        return DataLoader(
            self._splits[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def _classic_reason(self) -> Optional[str]:
        """Why this run takes torch's DataLoader rather than whole batches (None: it does not)."""
        if os.environ.get(CLASSIC_ENV, "") not in ("", "0"):
            reason = f"{CLASSIC_ENV} is set"
        elif self.num_workers > 0:
            reason = f"data.num_workers={self.num_workers}"
        elif self.trainer is not None and self.trainer.overfit_batches:
            return "overfit_batches"  # a debug run: Lightning makes the classic loader sequential for it
        else:
            return None
        if not getattr(self, "_told_classic", False):
            self._told_classic = True
            log.info("Batches go through torch's DataLoader (%s): per-sample indexing and collation, "
                     "slower than whole batches from memory.", reason)
        return reason

    def _batches(self, split: str, shuffle: bool) -> TensorBatches:
        dataset = self._splits[split]
        tensors = self._on_device(split, dataset.tensors)
        replicas, rank = self._shard()
        return TensorBatches(tensors, self.batch_size, shuffle=shuffle, seed=self._shuffle_seed() if shuffle else 0,
                             num_replicas=replicas, rank=rank)

    def _on_device(self, split: str, tensors: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """The split's tensors on the training device, moved there once: a GPU then indexes
        its batches itself and no batch crosses the bus."""
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if device.type == "cpu":
            return tensors
        cache = self.__dict__.setdefault("_device_tensors", {})
        if cache.get(split, (None,))[0] != device:
            cache[split] = (device, tuple(t.to(device) for t in tensors))
        return cache[split][1]

    def _shard(self) -> tuple[int, int]:
        """(ranks, this rank) where Lightning would inject a DistributedSampler; (1, 0) otherwise."""
        trainer = self.trainer
        kwargs = trainer.distributed_sampler_kwargs if trainer is not None else None
        if not kwargs or kwargs["num_replicas"] <= 1:
            return 1, 0
        if not getattr(getattr(trainer, "_accelerator_connector", None), "use_distributed_sampler", True):
            return 1, 0  # Trainer(use_distributed_sampler=False): the user shards, as with a DataLoader
        return int(kwargs["num_replicas"]), int(kwargs["rank"])

    def _shuffle_seed(self) -> int:
        """The seed of the per-epoch permutations: the run's seed, as Lightning gives
        DistributedSampler; an unseeded run draws one on rank 0 and shares it with the gang
        (the checkpoint keeps it for a mid-epoch resume)."""
        seed = os.environ.get("PL_GLOBAL_SEED")
        if seed is not None:
            return int(seed)
        drawn = int(torch.randint(0, 2**31 - 1, ()).item())
        if self.trainer is not None and self.trainer.world_size > 1:
            drawn = int(self.trainer.strategy.broadcast(drawn, src=0))
        return drawn

    def train_dataloader(self) -> Any:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> Any:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> Any:
        return self._loader("test", shuffle=False)


class DigitsDataModule(ArrayDataModule):
    """scikit-learn's 8x8 handwritten digits, scaled to [0, 1]."""

    def __init__(
        self,
        batch_size: int = 64,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        num_workers: int = 0,
        split_seed: int = 1234,
        num_classes: int = 10,
        input_shape: Sequence[int] = (1, 8, 8),
        name: Optional[str] = None,
        uses_dataset_cache: bool = False,
    ) -> None:
        super().__init__(batch_size=batch_size, val_fraction=val_fraction, test_fraction=test_fraction,
                         num_workers=num_workers, split_seed=split_seed, num_classes=num_classes,
                         input_shape=input_shape, name=name, uses_dataset_cache=uses_dataset_cache)

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.datasets import load_digits

        features, labels = load_digits(return_X_y=True)
        return features / 16.0, labels


class SyntheticDataModule(ArrayDataModule):
    """Gaussian clusters, one per class: learnable, any size, generated in milliseconds."""

    def __init__(
        self,
        num_samples: int = 20000,
        num_features: int = 64,
        num_classes: int = 10,
        class_sep: float = 0.25,
        noise: float = 1.0,
        seed: int = 0,
        batch_size: int = 128,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        num_workers: int = 0,
        split_seed: int = 1234,
        input_shape: Optional[Sequence[int]] = None,
        name: Optional[str] = None,
        uses_dataset_cache: bool = False,
    ) -> None:
        super().__init__(batch_size=batch_size, val_fraction=val_fraction, test_fraction=test_fraction,
                         num_workers=num_workers, split_seed=split_seed, num_classes=num_classes,
                         input_shape=input_shape or (num_features,), name=name,
                         uses_dataset_cache=uses_dataset_cache)
        self.save_hyperparameters(logger=False)

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        hp = self.hparams
        rng = np.random.default_rng(hp.seed)
        centers = rng.normal(0.0, hp.class_sep, size=(hp.num_classes, hp.num_features))
        labels = rng.integers(0, hp.num_classes, size=hp.num_samples)
        features = centers[labels] + rng.normal(0.0, hp.noise, size=(hp.num_samples, hp.num_features))
        return features.astype(np.float32), labels


def _unsplittable(described: str, labels: np.ndarray, val_fraction: float, test_fraction: float,
                  exc: ValueError) -> Exception:
    """scikit-learn's refusal of a stratified split, as the run's one sentence: the data's size
    is known only once a source is read, after validation, so this is where it can be said."""
    from aegis.data.errors import DataSourceError

    counts = np.unique(labels, return_counts=True)[1] if len(labels) else np.array([0])
    reason = str(exc).strip().rstrip(".")
    return DataSourceError(
        f"{described} ({len(labels)} samples, {len(counts)} classes, the smallest with {int(counts.min())}) cannot be "
        f"split by class into train, val (data.val_fraction={val_fraction}) and test (data.test_fraction="
        f"{test_fraction}): {reason[:1].lower()}{reason[1:]}; expected more samples of each class, or fractions "
        "that leave every split at least one sample of each class.")
