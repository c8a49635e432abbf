"""The plain-PyTorch DDP loop that bench/ddp_scaling.py runs beside train.py.

No Lightning, no Aegis: the same synthetic data shape (64 features, 10 classes), the same
MLP (64-512-256-10, ReLU, dropout 0.1), Adam, a DataLoader over a TensorDataset with a
DistributedSampler, gloo on CPU. It shows what DDP on this machine can give at all, so
the scaling Aegis reaches is read against the machine's ceiling, not against 2.0x.

    python bench/baseline_ddp_torch.py OUT.json --batch 128 --samples-per-process 40000 --epochs 3
    torchrun --nproc_per_node=2 bench/baseline_ddp_torch.py OUT.json ...

Rank 0 writes {"samples_per_s", "world_size", "steps", "seconds"} to OUT.json; the
clock starts at the first training step, as Aegis's summary.json timing does.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--samples-per-process", type=int, default=40000)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    world = int(os.environ.get("WORLD_SIZE", "1"))
    distributed = world > 1
    if distributed:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if distributed else 0
    torch.manual_seed(0)

    generator = torch.Generator().manual_seed(0)
    samples = args.samples_per_process * world
    centers = torch.randn(10, 64, generator=generator) * 0.25
    labels = torch.randint(0, 10, (samples,), generator=generator)
    features = centers[labels] + torch.randn(samples, 64, generator=generator)
    dataset = TensorDataset(features, labels)
    sampler = DistributedSampler(dataset, shuffle=True, seed=0) if distributed else None
    loader = DataLoader(dataset, batch_size=args.batch, shuffle=sampler is None, sampler=sampler)

    model: nn.Module = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Dropout(0.1), nn.Linear(512, 256), nn.ReLU(),
                                     nn.Dropout(0.1), nn.Linear(256, 10))
    if distributed:
        model = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    steps, started = 0, None
    for epoch in range(args.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        for x, y in loader:
            if started is None:
                started = time.time()
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
    seconds = time.time() - (started or time.time())
    if rank == 0:
        with open(args.out, "w") as handle:
            json.dump({"samples_per_s": steps * args.batch * world / seconds, "world_size": world,
                       "steps": steps, "seconds": seconds}, handle)
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
