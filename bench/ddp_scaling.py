"""DDP weak scaling on the synthetic data: 2 processes vs 1 on this machine.

Weak scaling: each process keeps the same per-process batch and the same number of
samples, so the 2-process run trains on twice the data in (ideally) the same time.
Each process gets one thread (OMP_NUM_THREADS=1, what torchrun gives each of 2
processes on 2 cores), so the comparison is per-process resources held constant. For
reference it also runs 1 process with every core's threads, which on a 2-core machine
already uses the whole machine. Reports training samples/s (from summary.json's timing:
steps x batch x world size / training seconds) and the ratio (aim: >= 1.6x on 2 cores).

Beside it runs bench/baseline_ddp_torch.py, the same model and data in a plain PyTorch
DDP loop (no Lightning, no Aegis), 1 process and a 2-process torchrun gang: the scaling
this machine gives DDP at all, which Aegis's is read against.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from _common import PYTHON, REPO, median, run, spread, summary_of

REPEATS = 2
# At least 40,000 samples and 60 steps per epoch per process, so even the largest batch
# times seconds of training, not the run's fixed per-epoch costs (validation, checkpoints).
MIN_SAMPLES_PER_PROCESS = 40000
MIN_STEPS_PER_EPOCH = 60
# Per-process batch sizes. On CPU, gloo's allreduce of this model's gradients (~2.4 ms on
# loopback here) and Lightning's fixed per-step cost (~3 ms of hooks and logging) weigh
# against the compute of a small batch, so scaling is reported for small to large
# batches (BENCH_BATCHES=512 for one).
BATCHES = tuple(int(b) for b in os.environ.get('BENCH_BATCHES', '128,512,2048').split(','))
COMMON = [
    "data=synthetic", "data.val_fraction=0.02", "data.test_fraction=0.02",
    "model.hidden_dims=[512,256]", "trainer.max_epochs=3", "trainer.accelerator=cpu",
    "logger=none", "test_after_fit=false",
]


def samples_per_process(batch: int) -> int:
    return max(MIN_SAMPLES_PER_PROCESS, MIN_STEPS_PER_EPOCH * batch)


def samples_per_s(processes: int, batch: int, threads: int = 1) -> float:
    root = Path(tempfile.mkdtemp(prefix="aegis-ddp-bench-"))
    samples = samples_per_process(batch) * processes
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


def torch_samples_per_s(processes: int, batch: int) -> float:
    """The plain-PyTorch loop, one thread per process."""
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    script = [str(REPO / "bench" / "baseline_ddp_torch.py"), str(out), "--batch", str(batch),
              "--samples-per-process", str(samples_per_process(batch)), "--epochs", "3"]
    launcher = [PYTHON, "-m", "torch.distributed.run", f"--nproc_per_node={processes}"] if processes > 1 else [PYTHON]
    try:
        run(launcher + script, env={"OMP_NUM_THREADS": "1"})
        return json.loads(out.read_text())["samples_per_s"]
    finally:
        out.unlink(missing_ok=True)


def main() -> None:
    cores = os.cpu_count() or 1
    print(f"DDP weak scaling (synthetic, MLP 512-256, >= {MIN_SAMPLES_PER_PROCESS} samples and "
          f"{MIN_STEPS_PER_EPOCH} steps/epoch per process, 3 epochs, {cores} CPUs)")
    for batch in BATCHES:
        one, two, one_all, torch_one, torch_two = [], [], [], [], []
        for _ in range(REPEATS):
            one.append(samples_per_s(1, batch))
            two.append(samples_per_s(2, batch))
            one_all.append(samples_per_s(1, batch, threads=cores))
            torch_one.append(torch_samples_per_s(1, batch))
            torch_two.append(torch_samples_per_s(2, batch))
        print(f"  batch {batch}/process, {samples_per_process(batch)} samples/process")
        print(f"    1 process,  1 thread    samples/s {spread(one)}")
        print(f"    2 processes, 1 thread   samples/s {spread(two)}")
        print(f"    1 process, {cores} threads   samples/s {spread(one_all)}")
        print(f"    weak scaling, 2 vs 1 process (1 thread each): {median(two) / median(one):.2f}x  (aim >= 1.6x)")
        print(f"    2 processes vs 1 process using all {cores} cores: {median(two) / median(one_all):.2f}x")
        print(f"    plain PyTorch DDP, 1 process  samples/s {spread(torch_one)}")
        print(f"    plain PyTorch DDP, 2 processes samples/s {spread(torch_two)}")
        print(f"    plain PyTorch weak scaling, 2 vs 1: {median(torch_two) / median(torch_one):.2f}x"
              f"  (Aegis {median(two) / median(one):.2f}x)")


if __name__ == "__main__":
    main()
