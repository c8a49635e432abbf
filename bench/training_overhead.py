"""Aegis's training overhead: `python train.py` against a hand-written Lightning script.

Both train the same MLP on the same digits split with the same Trainer settings, one
after the other, alternating, REPEATS times. Reports steps/s (target ratio >= 0.95) and
time from process launch to the first training step (target: within 0.5 s). A third arm,
the script keeping a checkpoint of every epoch as Aegis's ``last.ckpt`` does, separates
the price of that guarantee from the rest of Aegis's overhead.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from _common import PYTHON, REPO, median, run, spread, summary_of

REPEATS = 5


def aegis_once() -> tuple[float, float]:
    root = Path(tempfile.mkdtemp(prefix="aegis-bench-"))
    try:
        started, _ = run([PYTHON, "train.py", "logger=none", "trainer.accelerator=cpu"],
                         env={"AEGIS_OUTPUT_ROOT": str(root)})
        timing = summary_of(root)["timing"]
        return timing["train_steps_per_s"], timing["first_step_unix"] - started
    finally:
        shutil.rmtree(root, ignore_errors=True)


def baseline_once(*flags: str) -> tuple[float, float]:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    started, _ = run([PYTHON, str(REPO / "bench" / "baseline_lightning.py"), str(out), *flags])
    record = json.loads(out.read_text())
    out.unlink()
    return record["train_steps_per_s"], record["first_step_unix"] - started


def main() -> None:
    aegis_rate, aegis_first, base_rate, base_first, last_rate = [], [], [], [], []
    for _ in range(REPEATS):
        rate, first = baseline_once()
        base_rate.append(rate), base_first.append(first)
        rate, first = aegis_once()
        aegis_rate.append(rate), aegis_first.append(first)
        last_rate.append(baseline_once("--last-every-epoch")[0])
    print("training overhead (digits MLP, 20 epochs of 20 steps, CPU)")
    print(f"  steps/s      train.py  {spread(aegis_rate)}")
    print(f"  steps/s      baseline  {spread(base_rate)}")
    print(f"  steps/s      baseline + a checkpoint every epoch  {spread(last_rate)}")
    print(f"  first step s train.py  {spread(aegis_first)}")
    print(f"  first step s baseline  {spread(base_first)}")
    print(f"  ratio steps/s (train.py / baseline): {median(aegis_rate) / median(base_rate):.3f}  (target >= 0.95)")
    print(f"  ratio steps/s (train.py / baseline + a checkpoint every epoch): "
          f"{median(aegis_rate) / median(last_rate):.3f}")
    print(f"  first-step delta (train.py - baseline): {median(aegis_first) - median(base_first):+.3f} s"
          "  (target <= +0.5 s)")

if __name__ == "__main__":
    main()
