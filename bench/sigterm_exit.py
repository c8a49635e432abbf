"""Time from SIGTERM to exit, against the grace period a pod gets and a bare torch.save.

A preempted pod has ``terminationGracePeriodSeconds`` (launcher.termination_grace_period_s,
default 60) between the kubelet's SIGTERM and its SIGKILL. In that window ``python
train.py`` must finish its batch, write ``last.ckpt`` atomically (temp file, fsync, rename,
hard link of the previous state) and its record, and exit 143. This measures that window
for the default model and for a model whose checkpoint is about 500 MB, and sets it
beside two baselines run in the same script: the grace period (the ratio must stay well
under 1), and ``torch.save`` of the same checkpoint's bytes with nothing else (what the
stop costs beyond writing the state at all).

    .venv/bin/python bench/sigterm_exit.py            # both models, 3 repeats each
    .venv/bin/python bench/sigterm_exit.py --repeats 1
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import PYTHON, REPO, median, spread, summary_of

GRACE_S = 60.0  # launcher.termination_grace_period_s's default
MODELS = {
    "default (mlp 256-128, digits)": ["data=digits", "data.batch_size=8"],  # epochs long enough to stop in
    # 64 inputs, 6400x6400 hidden: ~41.4M parameters; with Adam's two moments ~500 MB on disk
    "~500 MB checkpoint (mlp 6400-6400)": ["data=digits", "model.hidden_dims=[6400,6400]"],
}


def one_stop(overrides: list[str], root: Path) -> tuple[float, float, int]:
    """(seconds from SIGTERM to exit, checkpoint MB, exit code) of one run stopped mid-fit."""
    env = {**os.environ, "AEGIS_OUTPUT_ROOT": str(root), "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    args = [PYTHON, str(REPO / "train.py"), *overrides, "trainer.max_epochs=50", "logger=none", "run_id=b",
            "progress=lines", "test_after_fit=false"]
    log_path = root / "train.log.out"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 600
        while not (found := re.search(r"epoch 2/\d+ .*\(([0-9.]+)s\)", log_path.read_text())):
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"run ended before it could be stopped:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.02)
        time.sleep(float(found.group(1)) / 2)  # the middle of epoch 3: no epoch-end save under way
        sent = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=300)
        took = time.perf_counter() - sent
    record = summary_of(root)
    size = Path(record["checkpoints"]["last"]).stat().st_size / 1e6
    return took, size, code


def bare_save_s(checkpoint: Path, folder: Path) -> float:
    """torch.save of the same checkpoint dict to the same disk, with an fsync: the floor."""
    import torch

    state = torch.load(checkpoint, weights_only=False, map_location="cpu")
    target = folder / "bare.ckpt"
    started = time.perf_counter()
    with open(target, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    took = time.perf_counter() - started
    target.unlink()
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"SIGTERM mid-fit -> exit 143 (python train.py, CPU, {os.cpu_count()} cores); grace period {GRACE_S:.0f} s")
    for label, overrides in MODELS.items():
        stops, bares, size = [], [], 0.0
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp)
                took, size, code = one_stop(overrides, root)
                if code != 143:
                    raise SystemExit(f"{label}: exit code {code}, expected 143")
                stops.append(took)
                bares.append(bare_save_s(Path(summary_of(root)["checkpoints"]["last"]), root))
        stop, bare = median(stops), median(bares)
        print(f"  {label}: checkpoint {size:.0f} MB")
        print(f"    SIGTERM -> exit   {spread(stops)} s")
        print(f"    bare torch.save   {spread(bares)} s")
        print(f"    ratio to the grace period {stop / GRACE_S:.3f}; to a bare save {stop / bare:.2f}x")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
