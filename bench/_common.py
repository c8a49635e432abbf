"""Helpers shared by the benchmarks: run a command, time it, summarise repeats."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def run(command: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> tuple[float, float]:
    """Run to completion; return (launch unix time, wall seconds). Fails loudly on error."""
    started = time.time()
    t0 = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True,
                            text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if result.returncode != 0:
        raise SystemExit(f"benchmark command failed ({result.returncode}): {' '.join(command)}\n"
                         f"{result.stderr[-3000:]}")
    return started, wall


def median(values: list[float]) -> float:
    return statistics.median(values)


def summary_of(root: Path) -> dict:
    [path] = list(root.rglob("summary.json"))
    return json.loads(path.read_text())


def spread(values: list[float]) -> str:
    return f"median {median(values):.3f} (min {min(values):.3f}, max {max(values):.3f}, n={len(values)})"
