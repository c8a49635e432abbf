"""The in-memory data path: train.py's steps/s before (torch's DataLoader) and after (whole
batches by indexing), beside a minimal Lightning script and a plain PyTorch loop.

Two workloads, each arm alternating, REPEATS times, in one run:

- default: ``python train.py logger=none`` (digits MLP, batch 64, 20 epochs of 20 steps);
- long epochs: ``data=synthetic data.num_samples=200000 data.batch_size=256`` (625 steps
  an epoch), EPOCHS_SYNTHETIC epochs.

"before" is the same train.py as every run was before issue 12: ``AEGIS_CLASSIC_DATALOADER=1``
(torch's ``DataLoader(TensorDataset)``) and ``AEGIS_LOG_FASTPATH=0`` (Lightning's per-log
device move as shipped); "batches" switches the data path alone; "after" is the default. Steps/s are
``summary.json``'s (first training step to the end of fit, validation and checkpoints
included) and the baselines' (bench/baseline_data_path.py) over the same span.
Every process runs torch on one thread (``OMP_NUM_THREADS=1``, all arms alike): on a shared
2-core machine, two OpenMP threads spin-waiting for a core turned a busy moment into
10x slower steps, which no number of repeats averaged away.

Targets (issue 12): after/before >= 1.3 on the default; after/plain >= 0.8 on long epochs.

``cache``: images per second from a filled dataset cache (``data=image_folder``'s cache
hit: the memory-mapped entry to float32 arrays, then to the split tensors the batches come
from), for CACHE_IMAGES digits PNGs decoded into the cache once beforehand (target
>= 20k images/s). Run one part with ``data_path.py default|synthetic|cache``.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from _common import PYTHON, REPO, median, run, spread, summary_of

THREADS = {"OMP_NUM_THREADS": "1"}

REPEATS = 3
EPOCHS_SYNTHETIC = 2
WORKLOADS = {
    "default": ("digits", 20, []),
    "synthetic": ("synthetic", EPOCHS_SYNTHETIC,
                  ["data=synthetic", "data.num_samples=200000", "data.batch_size=256",
                   f"trainer.max_epochs={EPOCHS_SYNTHETIC}"]),
}


ARMS = {  # train.py's arms: (classic DataLoader, Lightning's log path as shipped)
    "before": (True, True),
    "batches": (False, True),
    "after": (False, False),
}


def aegis_once(overrides: list[str], arm: str) -> float:
    classic, log_as_shipped = ARMS[arm]
    root = Path(tempfile.mkdtemp(prefix="aegis-bench-"))
    try:
        run([PYTHON, "train.py", "logger=none", "trainer.accelerator=cpu", *overrides],
            env={**THREADS, "AEGIS_OUTPUT_ROOT": str(root), "AEGIS_CLASSIC_DATALOADER": "1" if classic else "0",
                 "AEGIS_LOG_FASTPATH": "0" if log_as_shipped else "1"})
        return summary_of(root)["timing"]["train_steps_per_s"]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def baseline_once(arm: str, data: str, epochs: int) -> float:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    run([PYTHON, str(REPO / "bench" / "baseline_data_path.py"), str(out), arm, data, str(epochs)],
        env={**THREADS, "PYTHONPATH": str(REPO / "src")})
    record = json.loads(out.read_text())
    out.unlink()
    return record["train_steps_per_s"]


CACHE_IMAGES = 20000


def cache_load() -> None:
    import time

    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    from aegis.training.datasets import ImageFolderDataModule

    work = Path(tempfile.mkdtemp(prefix="aegis-bench-cache-"))
    try:
        features, labels = load_digits(return_X_y=True)
        for i in range(CACHE_IMAGES):
            target = work / "images" / str(labels[i % len(labels)]) / f"{i:05d}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            pixels = np.round(features[i % len(labels)].reshape(8, 8) * 255 / 16).astype(np.uint8)
            Image.fromarray(pixels).save(target)

        def module() -> ImageFolderDataModule:
            return ImageFolderDataModule(source=str(work / "images"), cache_dir=str(work / "cache"))

        started = time.perf_counter()
        module().load()  # the miss: decode every PNG once into the cache
        fill = time.perf_counter() - started
        loads, setups = [], []
        for _ in range(REPEATS * 2):
            data = module()
            started = time.perf_counter()
            data.load()
            loads.append(CACHE_IMAGES / (time.perf_counter() - started))
            data = module()
            started = time.perf_counter()
            data.setup()
            setups.append(CACHE_IMAGES / (time.perf_counter() - started))
        print(f"cache ({CACHE_IMAGES} 8x8 PNGs): images/s")
        print(f"  first fill (decode)        {CACHE_IMAGES / fill:.0f}")
        print(f"  cache hit, load()          {spread(loads)}  (target >= 20000)")
        print(f"  cache hit, setup() (+split) {spread(setups)}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(names: list[str]) -> None:
    for name in names:
        if name == "cache":
            cache_load()
            continue
        data, epochs, overrides = WORKLOADS[name]
        rates: dict[str, list[float]] = {"before": [], "batches": [], "after": [], "lightning": [], "plain": []}
        for _ in range(REPEATS):
            for arm in ARMS:
                rates[arm].append(aegis_once(overrides, arm))
            rates["lightning"].append(baseline_once("lightning", data, epochs))
            rates["plain"].append(baseline_once("plain", data, epochs))
        print(f"{name} ({data}, {epochs} epochs, CPU): training steps/s")
        for arm, values in rates.items():
            print(f"  {arm:10s} {spread(values)}")
        after = median(rates["after"])
        print(f"  batches / before:  {median(rates['batches']) / median(rates['before']):.3f}")
        print(f"  after / before:    {after / median(rates['before']):.3f}" + ("  (target >= 1.3)" if name == "default" else ""))
        print(f"  after / lightning: {after / median(rates['lightning']):.3f}")
        print(f"  after / plain:     {after / median(rates['plain']):.3f}" + ("  (target >= 0.8)" if name == "synthetic" else ""))
        print(f"  before / plain:    {median(rates['before']) / median(rates['plain']):.3f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or [*WORKLOADS, "cache"])
