"""DDP weak scaling on the synthetic data: 2 processes vs 1 on this machine.

Weak scaling: each process keeps the same per-process batch and the same number of
samples, so the 2-process run trains on twice the data in (ideally) the same time.
Each process gets one thread (OMP_NUM_THREADS=1, what torchrun gives each of 2
processes on 2 cores), so the comparison is per-process resources held constant. For
reference it also runs 1 process with every core's threads, which on a 2-core machine
already uses the whole machine. Reports training samples/s (from summary.json's timing:
steps x batch x world size / training seconds) and the ratio (aim: >= 1.6x on 2 cores).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from _common import PYTHON, median, run, spread, summary_of

REPEATS = 2
SAMPLES_PER_PROCESS = 40000
# Per-process batch sizes. On CPU, Lightning's fixed per-step cost (~3 ms of hooks and
# logging here) and gloo's allreduce (~1.7 ms for this model) weigh against the compute
# of a small batch, so scaling is reported for a small and a larger batch
# (BENCH_BATCHES=512 for one).
BATCHES = tuple(int(b) for b in os.environ.get('BENCH_BATCHES', '128,512').split(','))
COMMON = [
    "data=synthetic", "data.val_fraction=0.02", "data.test_fraction=0.02",
    "model.hidden_dims=[512,256]", "trainer.max_epochs=3", "trainer.accelerator=cpu",
    "logger=none", "test_after_fit=false",
]


def samples_per_s(processes: int, batch: int, threads: int = 1) -> float:
    root = Path(tempfile.mkdtemp(prefix="aegis-ddp-bench-"))
    samples = SAMPLES_PER_PROCESS * processes
    overrides = [*COMMON, f"data.num_samples={samples}", f"data.batch_size={batch}"]
    if processes > 1:
        overrides += ["strategy=ddp", "launcher=torchrun", f"launcher.nproc_per_node={processes}"]
    try:
        run([PYTHON, "train.py", *overrides], env={"AEGIS_OUTPUT_ROOT": str(root), "OMP_NUM_THREADS": str(threads)})
        record = summary_of(root)
        timing = record["timing"]
        return timing["train_steps"] * batch * record["world_size"] / timing["train_seconds"]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    cores = os.cpu_count() or 1
    print(f"DDP weak scaling (synthetic, MLP 512-256, {SAMPLES_PER_PROCESS} samples/process, {cores} CPUs)")
    for batch in BATCHES:
        one, two, one_all = [], [], []
        for _ in range(REPEATS):
            one.append(samples_per_s(1, batch))
            two.append(samples_per_s(2, batch))
            one_all.append(samples_per_s(1, batch, threads=cores))
        print(f"  batch {batch}/process")
        print(f"    1 process,  1 thread    samples/s {spread(one)}")
        print(f"    2 processes, 1 thread   samples/s {spread(two)}")
        print(f"    1 process, {cores} threads   samples/s {spread(one_all)}")
        print(f"    weak scaling, 2 vs 1 process (1 thread each): {median(two) / median(one):.2f}x  (aim >= 1.6x)")
        print(f"    2 processes vs 1 process using all {cores} cores: {median(two) / median(one_all):.2f}x")


if __name__ == "__main__":
    main()
