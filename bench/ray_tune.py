"""HPO: the same 8 configurations on digits, by Hydra's basic sweeper and by Ray Tune + ASHA.

(a) ``python train.py -m <grid>``: Hydra's basic sweeper trains the 8 configurations one
    after another in one process, each to ``trainer.max_epochs``.
(b) ``python train.py search=ray-tune <same grid as tag(grid,...)>``: a local Ray,
    2 trials at a time (one CPU each), ASHA stopping the worse ones early.

Reports the wall time of each (process launch to exit, Ray's start included), their
ratio (target: (b)/(a) <= 0.6) and the best validation accuracy each found (target:
within 1 point). Both use the default trainer (20 epochs) and seed, and logger=none so
that tracking is not what is measured. Usage: ``python bench/ray_tune.py [repeats] [workload]
[both]``.

ASHA's gain depends on the order the grid is listed in (below); with ``both`` each round runs
the basic sweeper once and the search twice, its grid listed best guess first (favourable)
and worst first (unfavourable: every trial beats the ones before it at every rung, so ASHA
has nothing to stop), and prints the ratio each gives. The basic sweeper's wall does not
depend on the order (it runs all 8 to the end).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

from _common import PYTHON, median, run

# Listed best guess first, as a researcher would: asynchronous successive halving can only
# stop a trial relative to the trials that already reached its rung, so a grid in
# ascending quality (lr 3e-4 first) lets every trial through (measured: nothing stopped).
LRS = ["0.01", "0.003", "0.001", "0.0003"]
HIDDEN = ["[256,128]", "[64]"]
# Batches of 16 for 40 epochs: about 7 s per run here, so a search is worth distributing.
# (`python bench/ray_tune.py 1 light` keeps the default batch size and 20 epochs: ~2 s per run.)
COMMON = ["logger=none", "trainer.accelerator=cpu", "progress=none", "test_after_fit=false"]
WORKLOADS = {"default": ["data.batch_size=16", "trainer.max_epochs=40"], "light": []}


def basic_sweeper(workload: list[str]) -> tuple[float, float]:
    root = Path(tempfile.mkdtemp(prefix="aegis-bench-basic-"))
    try:
        _, wall = run([PYTHON, "train.py", "-m", f"model.lr={','.join(LRS)}", f"model.hidden_dims={','.join(HIDDEN)}",
                       *COMMON, *workload], env={"AEGIS_OUTPUT_ROOT": str(root)}, timeout=1800)
        scores = [json.loads(p.read_text())["checkpoints"]["best_score"] for p in root.rglob("summary.json")]
        assert len(scores) == 8, f"expected 8 runs, found {len(scores)}"
        return wall, max(scores)
    finally:
        shutil.rmtree(root, ignore_errors=True)


ORDERS = {"best-first": (LRS, HIDDEN), "worst-first": (LRS[::-1], HIDDEN[::-1])}


def ray_tune_asha(workload: list[str], order: str = "best-first") -> tuple[float, float]:
    lrs, hidden = ORDERS[order]
    root = Path(tempfile.mkdtemp(prefix="aegis-bench-tune-"))
    try:
        _, wall = run([PYTHON, "train.py", "search=ray-tune", "run_id=bench",
                       f"model.lr=tag(grid,choice({','.join(lrs)}))",
                       f"model.hidden_dims=tag(grid,choice({','.join(hidden)}))",
                       "hydra.sweeper.num_samples=1", "hydra.sweeper.scheduler.name=asha",
                       "hydra.sweeper.scheduler.grace_period=2", "hydra.sweeper.max_concurrent_trials=2",
                       "hydra.sweeper.num_cpus=2", "hydra.sweeper.resources.cpu=1", "hydra.sweeper.plot=false",
                       *COMMON, *workload], env={"AEGIS_OUTPUT_ROOT": str(root)}, timeout=1800)
        [best] = list(root.rglob("best.yaml"))
        return wall, float(yaml.safe_load(best.read_text())["value"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


def both_orders(repeats: int, name: str, workload: list[str]) -> None:
    walls: dict[str, list[float]] = {"basic": [], **{order: [] for order in ORDERS}}
    accs: dict[str, list[float]] = {arm: [] for arm in walls}
    for round_ in range(repeats):
        arms = ["basic", *ORDERS]
        if round_ % 2:
            arms.reverse()  # alternating: no arm always runs first
        for arm in arms:
            wall, acc = basic_sweeper(workload) if arm == "basic" else ray_tune_asha(workload, arm)
            walls[arm].append(wall)
            accs[arm].append(acc)
            print(f"  round {round_ + 1} {arm:12s} {wall:6.1f} s  best val/acc {acc:.4f}", flush=True)
    print("| search | wall s (median, min-max) | best val/acc | ratio to (a) (per round) |")
    print("|---|---|---|---|")
    for arm, values in walls.items():
        paired = [w / b for w, b in zip(values, walls["basic"])]
        ratio = "" if arm == "basic" else (f"**{median(values) / median(walls['basic']):.2f}** "
                                           f"({min(paired):.2f}-{max(paired):.2f})")
        label = "(a) Hydra basic sweeper, 8 runs in sequence" if arm == "basic" else \
            f"(b) search=ray-tune, ASHA, 2 concurrent, grid {arm}"
        print(f"| {label} | {median(values):.1f} ({min(values):.1f}-{max(values):.1f}) | {median(accs[arm]):.4f} "
              f"| {ratio} |")
    print(f"\nrepeats: {repeats}  workload: {name} {' '.join(workload)}")


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    name = sys.argv[2] if len(sys.argv) > 2 else "default"
    workload = WORKLOADS[name]
    if "both" in sys.argv[3:]:
        return both_orders(repeats, name, workload)
    basic_wall, basic_acc, tune_wall, tune_acc = [], [], [], []
    for _ in range(repeats):  # alternating, so drift on a shared machine hits both
        wall, acc = basic_sweeper(workload)
        basic_wall.append(wall)
        basic_acc.append(acc)
        wall, acc = ray_tune_asha(workload)
        tune_wall.append(wall)
        tune_acc.append(acc)
    ratio = median(tune_wall) / median(basic_wall)
    gap = (median(basic_acc) - median(tune_acc)) * 100
    print("| search | wall s | best val/acc |")
    print("|---|---|---|")
    print(f"| (a) Hydra basic sweeper, 8 runs in sequence | {median(basic_wall):.1f} | {median(basic_acc):.4f} |")
    print(f"| (b) search=ray-tune, ASHA, 2 concurrent | {median(tune_wall):.1f} | {median(tune_acc):.4f} |")
    print(f"\nwall time ratio (b)/(a): {ratio:.2f} (target <= 0.6)  "
          f"best val/acc gap: {gap:+.2f} points (target within 1)  repeats: {repeats}  workload: {name} "
          f"{' '.join(workload)}")


if __name__ == "__main__":
    main()
