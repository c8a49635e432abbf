"""Wall time of a Kubernetes dry run against composing the same config with Hydra alone.

    python bench/k8s_dry_run.py [--repeats 7] [--launcher pytorchjob|trainjob|k8s-job|rayjob]

Both sides are fresh interpreters (what a user waits for): the baseline imports Hydra,
registers Aegis's schemas and composes ``conf/`` with ``initialize_config_dir`` +
``compose``; the dry run is ``python train.py launcher=<launcher> launcher.dry_run=true
launcher.image=...`` (compose, validate, render, schema-check, print and write the
manifest). Runs are interleaved and the medians compared; the target is at most 1.5x.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "launcher.image=registry.example.com/aegis:0.1.0"
# Each launcher's dry run as its Done-when line spells it.
OVERRIDES = {
    "pytorchjob": ["strategy=ddp", "launcher=pytorchjob", IMAGE],
    "trainjob": ["strategy=ddp", "launcher=trainjob", "launcher.nodes=2", "launcher.nproc_per_node=2", IMAGE],
    "k8s-job": ["launcher=k8s-job", IMAGE],
    # A search (its space kept in conf/search/digits_mlp.yaml, so Hydra's compose can take it).
    "rayjob": ["search=digits_mlp", "launcher=rayjob", "launcher.workers=2", IMAGE],
}
# The empty app must not run (or hand off) the search: the same kind of config, a multirun with
# the search group, on Hydra's basic sweeper, which runs the empty task once.
FLOOR_OVERRIDES = {"rayjob": ["search=ray-tune", "hydra/sweeper=basic", "launcher=k8s-job", IMAGE]}
BASELINE = """
from hydra import compose, initialize_config_dir
from aegis.cli import prepare
prepare()
with initialize_config_dir(config_dir={conf!r}, version_base="1.3"):
    cfg = compose("train", overrides={overrides!r}, return_hydra_config=True)
"""
# The same config through an empty @hydra.main app: what a plain Hydra app pays before
# its task runs (Hydra composes twice, once to learn the run mode, then sets up logging
# and the run dir; train.py composes once, see aegis.config.compose_once). Shows how much
# of the ratio is Hydra's and how much Aegis's.
FLOOR = f"""
import hydra
from aegis.cli import prepare

@hydra.main(version_base="1.3", config_path={str(ROOT / 'conf')!r}, config_name="train")
def main(cfg):
    pass

prepare()
main()
"""
TARGET = 1.5


def timed(argv: list[str], env: dict[str, str], cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--launcher", choices=sorted(OVERRIDES), default="pytorchjob")
    args = parser.parse_args()
    overrides = OVERRIDES[args.launcher]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "AEGIS_OUTPUT_ROOT": tmp}
        dry = [sys.executable, str(ROOT / "train.py"), *overrides, "launcher.dry_run=true"]
        base = [sys.executable, "-c", BASELINE.format(conf=str(ROOT / "conf"), overrides=overrides)]
        floor_app = Path(tmp) / "floor_app.py"
        floor_app.write_text(FLOOR)
        floor = [sys.executable, str(floor_app), *FLOOR_OVERRIDES.get(args.launcher, overrides)]
        for argv in (dry, base, floor):  # warm the page cache and .pyc files
            timed(argv, env, tmp)
        dry_s, base_s, floor_s = [], [], []
        for _ in range(args.repeats):
            base_s.append(timed(base, env, tmp))
            floor_s.append(timed(floor, env, tmp))
            dry_s.append(timed(dry, env, tmp))
    b, f, d = (statistics.median(x) for x in (base_s, floor_s, dry_s))
    ratio = d / b
    print(f"hydra compose alone (baseline) : median {b:.3f} s  (min {min(base_s):.3f}, n={len(base_s)})")
    print(f"empty @hydra.main app          : median {f:.3f} s  (min {min(floor_s):.3f})  {f / b:.2f}x baseline")
    print(f"{args.launcher + ' dry run':<31}: median {d:.3f} s  (min {min(dry_s):.3f})  {d / f:.2f}x the empty app")
    print(f"ratio dry run / baseline       : {ratio:.2f}x  (target <= {TARGET}x) {'OK' if ratio <= TARGET else 'OVER'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
