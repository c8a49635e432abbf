"""Config-only paths must cost about what composing with Hydra alone costs.

Baseline: a process that registers the schemas and resolvers (what any Hydra app with
structured configs must do) and composes conf/train.yaml with Hydra's compose API.
Measured against it, in one run, alternating: `train.py --cfg job` and `train.py` with a
value that validation refuses. Target: each within 1.5x. Also asserts neither imports
torch or lightning.
"""

from __future__ import annotations

import subprocess

from _common import PYTHON, REPO, median, run, spread

REPEATS = 15

HYDRA_ALONE = f"""
from hydra import compose, initialize_config_dir
from aegis.config.schema import register_configs
from aegis.config.resolvers import register_resolvers
register_configs(); register_resolvers()
with initialize_config_dir(config_dir={str(REPO / 'conf')!r}, version_base="1.3"):
    cfg = compose("train", return_hydra_config=True)
print(len(cfg))
"""

CASES = {
    "hydra compose alone": [PYTHON, "-c", HYDRA_ALONE],
    "train.py --cfg job": [PYTHON, "train.py", "--cfg", "job"],
    "train.py validation error": [PYTHON, "train.py", "trainer.max_epochs=-1"],
}


def wall(command: list[str]) -> float:
    if "trainer.max_epochs=-1" in command:  # expected to fail: time it without raising
        import time

        t0 = time.perf_counter()
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        assert result.returncode == 1 and result.stderr.startswith("Error: "), result.stderr
        return time.perf_counter() - t0
    return run(command)[1]


def imports_torch(command: list[str]) -> bool:
    result = subprocess.run([command[0], "-X", "importtime", *command[1:]], cwd=REPO, capture_output=True, text=True)
    modules = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    return bool({"torch", "lightning"} & modules)


def main() -> None:
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(REPEATS):
        for name, command in CASES.items():
            times[name].append(wall(command))
    base = median(times["hydra compose alone"])
    print("config-only paths (wall seconds per process)")
    for name, values in times.items():
        print(f"  {name:28s} {spread(values)}  ratio {median(values) / base:.2f}x")
    for name in ("train.py --cfg job", "train.py validation error"):
        print(f"  {name:28s} imports torch/lightning: {imports_torch(CASES[name])}  (target False)")
    print("  target: train.py paths <= 1.5x of hydra compose alone")


if __name__ == "__main__":
    main()
