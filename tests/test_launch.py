"""Launchers render exact requests with no side effects; run dirs are pinned for children."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from aegis.config.resolvers import new_stamp, rank_suffix, rank_zero_only
from aegis.launch import get_launcher
from aegis.launch.base import RunContext
from aegis.errors import ConfigError
from helpers import REPO
import pytest


def _ctx(*overrides: str, run_dir: str = "/runs/x y") -> RunContext:
    return RunContext(run_dir=Path(run_dir), run_id="2026-01-01_00-00-00_abcdef",
                      task_overrides=tuple(overrides), config_name="train", entrypoint="/repo/train.py")


def test_child_overrides_pin_the_run_and_replace_the_launcher_group():
    ctx = _ctx("strategy=ddp", "launcher=torchrun", "launcher.nproc_per_node=2", "model.lr=0.01",
               "run_id=mine", "hydra.run.dir=elsewhere")
    assert ctx.child_overrides(launcher="local") == [
        "strategy=ddp",
        "model.lr=0.01",
        "launcher=local",
        "run_id=2026-01-01_00-00-00_abcdef",
        "hydra.run.dir='/runs/x y'",  # quoted for Hydra's grammar: it has a space
    ]


def test_child_overrides_keep_hydra_keys_other_than_the_run_dir():
    ctx = _ctx("hydra.job.name=foo", "+model.extra=1")
    out = ctx.child_overrides(launcher="local")
    assert "hydra.job.name=foo" in out and "+model.extra=1" in out


def test_torchrun_renders_a_standalone_gang_on_one_node(compose):
    cfg = compose("strategy=ddp", "launcher=torchrun", "launcher.nproc_per_node=3", "trainer=smoke")
    plan = get_launcher("torchrun").render(cfg, _ctx("strategy=ddp", "launcher=torchrun", "trainer=smoke"))
    assert plan.argv[:3] == [sys.executable, "-m", "aegis.launch.elastic"]  # torchrun, recording failures
    assert "--standalone" in plan.argv and "--nproc-per-node=3" in plan.argv
    entry = plan.argv.index("/repo/train.py")
    assert plan.argv[entry + 1:] == [
        "--config-name=train", "strategy=ddp", "trainer=smoke", "launcher=local",
        "run_id=2026-01-01_00-00-00_abcdef", "hydra.run.dir='/runs/x y'",
    ]


def test_torchrun_renders_multi_node_rendezvous_by_hand(compose):
    cfg = compose("strategy=ddp", "launcher=torchrun", "launcher.nnodes=2", "launcher.node_rank=1",
                  "launcher.master_addr=10.0.0.5", "launcher.master_port=29400", "launcher.max_restarts=3")
    argv = get_launcher("torchrun").render(cfg, _ctx()).argv
    assert "--standalone" not in argv
    for flag in ("--nnodes=2", "--node-rank=1", "--master-addr=10.0.0.5", "--master-port=29400",
                 "--max-restarts=3"):
        assert flag in argv


def test_unknown_launcher_names_the_valid_ones():
    with pytest.raises(ConfigError, match="expected one of k8s-job, local, pytorchjob, rayjob, slurm, torchrun, trainjob"):
        get_launcher("slurm-ish")


_SIGNATURES = textwrap.dedent("""
    import sys
    from aegis.config.signature import static_signature

    sig = static_signature("aegis.training.models.MLPClassifier")
    assert sig is not None and "hidden_dims" in sig.parameters
    assert sig.required == ("input_shape", "num_classes")
    inherited = static_signature("aegis.training.data.DigitsDataModule")  # __init__ of its base
    assert inherited is not None and "val_fraction" in inherited.parameters
    assert static_signature("no.such.module.Thing") is None
    print(sorted(m for m in ("torch", "lightning", "aegis.training.models", "aegis.training.data") if m in sys.modules))
""")


def test_static_signature_reads_init_parameters_without_importing():
    # A fresh interpreter: in this one, any earlier test may have imported torch already.
    proc = subprocess.run([sys.executable, "-c", _SIGNATURES], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "[]", f"reading signatures imported {proc.stdout.strip()}"


def test_stamps_are_unique_even_within_one_second():
    stamps = {new_stamp() for _ in range(200)}
    assert len(stamps) == 200


def test_rank_helpers_follow_torchrun_env(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    assert rank_suffix() == "" and rank_zero_only(".hydra") == ".hydra"
    monkeypatch.setenv("RANK", "3")
    assert rank_suffix() == ".rank3" and rank_zero_only(".hydra") is None
