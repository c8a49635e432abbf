"""Whole batches from in-memory tensors, by indexing: the fast data path.

A ``DataLoader`` over a ``TensorDataset`` calls ``__getitem__`` once per sample and
stacks the samples back together with ``default_collate``: for small models (the digits
MLP) that costs about as much as the step itself. When the data already sits in memory
as tensors, a batch is one ``index_select`` per tensor.

The order is DistributedSampler's, index for index: a permutation drawn from a generator
seeded with ``seed + epoch`` (so a resumed run and every rank of a gang agree without
talking), padded by repeating its head to a multiple of the number of ranks (or cut, with
``drop_last``), then rank ``r`` takes every ``num_replicas``-th index from ``r``. One
process is the one-rank case of the same rule. Lightning injects a DistributedSampler only
into ``torch.utils.data.DataLoader`` objects, so it never shards these twice.

``TensorBatches`` is what Lightning gets: sized (progress, ``limit_*_batches``),
``sampler.set_epoch`` (which Lightning calls at each epoch start) and ``state_dict`` /
``load_state_dict`` (Lightning stores it in the checkpoint), so a run resumed mid-epoch
continues with the next batch of the same permutation rather than a fresh one.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Optional, Sequence

import torch


def shard_indices(num_samples: int, *, num_replicas: int = 1, rank: int = 0, shuffle: bool, seed: int = 0,
                  epoch: int = 0, drop_last: bool = False) -> torch.Tensor:
    """The indices rank ``rank`` visits in ``epoch``: ``list(DistributedSampler(...))`` as a tensor."""
    if not 0 <= rank < num_replicas:
        raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
    if shuffle:
        generator = torch.Generator()
        generator.manual_seed(seed + epoch)
        indices = torch.randperm(num_samples, generator=generator)
    else:
        indices = torch.arange(num_samples)
    per_rank = shard_size(num_samples, num_replicas, drop_last)
    total = per_rank * num_replicas
    if total > num_samples:  # pad with the head, repeated as often as needed (tiny sets, many ranks)
        repeats = math.ceil((total - num_samples) / num_samples)
        indices = torch.cat([indices, indices.repeat(repeats)[: total - num_samples]])
    else:
        indices = indices[:total]
    return indices[rank:total:num_replicas]


def shard_size(num_samples: int, num_replicas: int, drop_last: bool) -> int:
    """Samples per rank, as DistributedSampler counts them."""
    if drop_last and num_samples % num_replicas:
        return math.ceil((num_samples - num_replicas) / num_replicas)
    return math.ceil(num_samples / num_replicas)


class EpochShard:
    """This rank's share of the samples in the current epoch; Lightning sets the epoch.

    Exposed as ``TensorBatches.sampler`` because that is where Lightning looks for
    ``set_epoch`` (``lightning.pytorch.loops.utilities._set_sampler_epoch``)."""

    def __init__(self, num_samples: int, *, shuffle: bool, seed: int, num_replicas: int = 1, rank: int = 0,
                 drop_last: bool = False) -> None:
        self.num_samples, self.shuffle, self.seed = num_samples, shuffle, seed
        self.num_replicas, self.rank, self.drop_last = num_replicas, rank, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return shard_size(self.num_samples, self.num_replicas, self.drop_last)

    def indices(self) -> torch.Tensor:
        return shard_indices(self.num_samples, num_replicas=self.num_replicas, rank=self.rank, shuffle=self.shuffle,
                             seed=self.seed, epoch=self.epoch, drop_last=self.drop_last)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())


class TensorBatches:
    """Batches ``[t[idx] for t in tensors]`` over this rank's shard, ``batch_size`` at a time
    (the last one partial, as a DataLoader without ``drop_last`` gives it).

    The tensors may live on an accelerator: the indices follow them there once per epoch.
    """

    def __init__(self, tensors: Sequence[torch.Tensor], batch_size: int, *, shuffle: bool, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0, drop_last: bool = False) -> None:
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError("tensors must be non-empty and of one length")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.tensors = tuple(tensors)
        self.batch_size = batch_size
        self.batch_sampler = None  # as a DataLoader with batch_size=None: Lightning reads both attributes
        self.sampler = EpochShard(len(tensors[0]), shuffle=shuffle, seed=seed, num_replicas=num_replicas, rank=rank,
                                  drop_last=drop_last)
        self._epoch_yielded = 0  # batches handed out in the epoch under way (what a checkpoint records)
        self._resume: Optional[tuple[int, int]] = None  # (epoch, batches already trained) from a checkpoint

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def __iter__(self) -> Iterator[list[torch.Tensor]]:
        epoch = self.sampler.epoch
        skip = 0
        if self._resume is not None:
            resume_epoch, done = self._resume
            self._resume = None
            if resume_epoch == epoch:
                skip = done
        indices = self.sampler.indices().to(self.tensors[0].device, non_blocking=True)
        tensors = self.tensors
        self._epoch_yielded = skip
        for batch in indices[skip * self.batch_size:].split(self.batch_size):
            self._epoch_yielded += 1
            yield [t.index_select(0, batch) for t in tensors]

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.sampler.epoch, "batches": self._epoch_yielded, "seed": self.sampler.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the checkpoint's epoch after its last trained batch. The seed comes along so an
        unseeded run walks the same permutation it started."""
        self.sampler.seed = int(state.get("seed", self.sampler.seed))
        self._resume = (int(state["epoch"]), int(state["batches"]))
