"""Helpers of the Kubernetes launcher tests: in-process composition and train.py subprocesses.

A module of its own (not conftest) so tests can import it whatever other conftest.py
files the suite grows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from composing import compose as composed

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
CRD = ROOT.parent / "shared" / "schemas" / "kubeflow.org_pytorchjobs.yaml"
IMAGE = "registry.example.com/aegis:0.1.0"


def compose_cfg(*overrides: str):
    """The config train.py would compose for ``overrides``, hydra node included."""
    from aegis.cli import prepare

    prepare()
    GlobalHydra.instance().clear()
    cfg = composed(list(overrides), hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def context_for(cfg, overrides, run_dir: Path):
    from aegis.launch.base import RunContext

    return RunContext(run_dir=run_dir, run_id=str(cfg.run_id), task_overrides=tuple(overrides), config_name="train")


def run_train(*args: str, cwd: Path, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python train.py args`` in a subprocess, importing this checkout's code (src/ first on the path)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
