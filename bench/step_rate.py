"""Steps/s of train.py's training phase beside plain PyTorch loops and a minimal Lightning
script on the same data, model and optimizer: side by side, alternating, REPEATS times.

    step_rate.py [long|digits ...] [--repeats N]

- ``long``: long epochs, ``data=synthetic data.num_samples=200000 data.batch_size=256
  model.hidden_dims=[256,256]`` (625 steps an epoch), LONG_EPOCHS epoch(s). Arms:
  ``aegis`` (train.py as shipped), ``aegis-before`` (the same with
  ``AEGIS_HOOK_FASTPATH=0``, Lightning's hook dispatch as shipped, and
  ``model._target_=per_step_logging.PerStepLoggingMLP``, the MLP with two ``self.log`` calls a
  step as it was before the epoch sums), ``plain`` (a loop
  batching by tensor indexing: the limit) and ``dataloader`` (the same loop over
  ``DataLoader(TensorDataset, shuffle=True)``). Target (issue 24): aegis/plain >= 0.8.
- ``digits``: the default run (digits MLP, batch 64, 20 epochs of 20 steps). Arms:
  ``aegis``, ``aegis-before`` (as for ``long``, and ``AEGIS_LAST_LINK=0``: ``last.ckpt``
  serialized a second time where a best checkpoint was just written at the same step),
  ``lightning`` (bench/baseline_data_path.py's minimal script: a default Trainer,
  validation each epoch, Lightning's own latest-epoch checkpoint),
  ``lightning-bare`` (the same with no validation, checkpoint or per-step log: issue 24's
  baseline) and ``plain``.

train.py runs ``logger=none test_after_fit=false trainer.accelerator=cpu``: steps/s are
``summary.json``'s (first training step to the end of fit, per-epoch validation and
checkpoints included) and the baselines' over the same span, each with a validation pass
per epoch; each also reports steps per second of its own CPU time (``time.process_time``
over the same span), which another process on the machine does not slow down the way it
does the wall clock. Every process runs torch on one thread (``OMP_NUM_THREADS=1``, as
bench/data_path.py does and for the same reason: a shared 2-core machine). Each line
prints the median, min and max over the repeats; each ratio is of medians, and also the
range of the per-round ratios (each round runs every arm once, back to back), which is
what to trust on a machine others are using.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from _common import PYTHON, REPO, median, run, spread, summary_of

THREADS = {"OMP_NUM_THREADS": "1"}
BEFORE = {"env": {"AEGIS_HOOK_FASTPATH": "0", "PYTHONPATH": str(REPO / "bench")},
          "overrides": ["model._target_=per_step_logging.PerStepLoggingMLP"]}
LONG_EPOCHS = 1
WORKLOADS = {
    "long": {
        "data": "synthetic", "epochs": LONG_EPOCHS, "hidden": "256,256",
        "overrides": ["data=synthetic", "data.num_samples=200000", "data.batch_size=256",
                      "model.hidden_dims=[256,256]", f"trainer.max_epochs={LONG_EPOCHS}"],
        "arms": {"aegis": {}, "aegis-before": BEFORE, "plain": None, "dataloader": None},
        "base": "plain", "target": 0.8,
    },
    "digits": {
        "data": "digits", "epochs": 20, "hidden": "256,128", "overrides": [],
        "arms": {"aegis": {}, "aegis-before": {**BEFORE, "env": {**BEFORE["env"], "AEGIS_LAST_LINK": "0"}},
                 "lightning": None, "lightning-bare": None, "plain": None},
        "base": "lightning", "target": None,
    },
}


def aegis_once(overrides: list[str], arm: dict) -> tuple[float, float]:
    root = Path(tempfile.mkdtemp(prefix="aegis-bench-"))
    try:
        run([PYTHON, "train.py", "logger=none", "test_after_fit=false", "trainer.accelerator=cpu", *overrides,
             *arm.get("overrides", [])],
            env={**THREADS, "AEGIS_OUTPUT_ROOT": str(root), **arm.get("env", {})})
        timing = summary_of(root)["timing"]
        return timing["train_steps_per_s"], timing["train_steps_per_cpu_s"]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def baseline_once(arm: str, data: str, epochs: int, hidden: str) -> tuple[float, float]:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    try:
        run([PYTHON, str(REPO / "bench" / "baseline_data_path.py"), str(out), arm, data, str(epochs), hidden],
            env={**THREADS, "PYTHONPATH": str(REPO / "src")})
        record = json.loads(out.read_text())
        return record["train_steps_per_s"], record["train_steps_per_cpu_s"]
    finally:
        out.unlink(missing_ok=True)


def measure(name: str, repeats: int) -> None:
    spec = WORKLOADS[name]
    walls: dict[str, list[float]] = {arm: [] for arm in spec["arms"]}
    cpus: dict[str, list[float]] = {arm: [] for arm in spec["arms"]}
    for round_ in range(repeats):
        arms = list(spec["arms"].items())
        if round_ % 2:
            arms.reverse()  # alternate the order too: no arm always runs first after a pause
        for arm, setup in arms:
            wall, cpu = (aegis_once(spec["overrides"], setup) if setup is not None
                         else baseline_once(arm, spec["data"], spec["epochs"], spec["hidden"]))
            walls[arm].append(wall)
            cpus[arm].append(cpu)
            print(f"  round {round_ + 1} {arm:14s} {wall:8.1f} steps/s  {cpu:8.1f} steps/CPU-s", flush=True)
    for unit, rates in (("steps/s (wall)", walls), ("steps per CPU second", cpus)):
        report(name, spec, unit, rates)


def report(name: str, spec: dict, unit: str, rates: dict[str, list[float]]) -> None:
    print(f"{name} ({spec['data']}, {spec['epochs']} epoch(s), hidden {spec['hidden']}, CPU, one thread): "
          f"training {unit}")
    for arm, values in rates.items():
        print(f"  {arm:14s} {spread(values)}")
    for arm in rates:
        for other in rates:
            if arm == other or not arm.startswith("aegis") or (other.startswith("aegis") and arm != "aegis"):
                continue
            paired = [a / b for a, b in zip(rates[arm], rates[other])]
            target = (f"  (target >= {spec['target']})" if arm == "aegis" and other == spec["base"] and spec["target"]
                      else "")
            print(f"  {arm} / {other}: {median(rates[arm]) / median(rates[other]):.3f} "
                  f"(per round {min(paired):.3f}-{max(paired):.3f}){target}")
    print(flush=True)


def main(argv: list[str]) -> None:
    repeats = 3
    if "--repeats" in argv:
        at = argv.index("--repeats")
        repeats = int(argv[at + 1])
        argv = argv[:at] + argv[at + 2:]
    for name in argv or list(WORKLOADS):
        measure(name, repeats)


if __name__ == "__main__":
    main(sys.argv[1:])
