"""compose_once: one composition per run, and exactly the config Hydra's two would give.

Each case runs a tiny ``@hydra.main`` app over conf/ twice in fresh interpreters, once
as Hydra does it and once inside ``compose_once()``, records every job's full config
(the ``hydra`` node included) and how often Hydra composed, and compares.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import CONF, REPO

APP = textwrap.dedent(f"""
    import contextlib, json, os, sys
    import hydra
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf
    from aegis.cli import prepare
    from aegis.config.compose_once import compose_once

    OUT = os.environ["CAPTURE"]
    composes = 0
    original = ConfigLoaderImpl._load_configuration_impl

    def counted(self, *args, **kwargs):
        global composes
        composes += 1
        return original(self, *args, **kwargs)

    ConfigLoaderImpl._load_configuration_impl = counted

    @hydra.main(version_base="1.3", config_path={str(CONF)!r}, config_name="train")
    def app(cfg):
        hydra_cfg = OmegaConf.to_container(HydraConfig.get(), resolve=False)
        for volatile in ("output_dir", "cwd"):
            hydra_cfg["runtime"].pop(volatile, None)
        hydra_cfg["job"].pop("id", None)
        record = {{"cfg": OmegaConf.to_container(cfg, resolve=False), "hydra": hydra_cfg}}
        with open(OUT, "a") as handle:
            handle.write(json.dumps(record, sort_keys=True, default=str) + "\\n")

    prepare()
    try:
        with compose_once() if os.environ["ONCE"] == "1" else contextlib.nullcontext():
            app()
    finally:
        with open(OUT + ".composes", "w") as handle:
            handle.write(str(composes))
""")


def run_app(tmp_path: Path, once: bool, args: list[str]) -> tuple[int, list[dict], int, str]:
    app = tmp_path / "app.py"
    app.write_text(APP)
    out = tmp_path / f"capture-{int(once)}.jsonl"
    env = {**os.environ, "CAPTURE": str(out), "ONCE": str(int(once)),
           "AEGIS_OUTPUT_ROOT": str(tmp_path / f"out-{int(once)}")}
    proc = subprocess.run([sys.executable, str(app), *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    records = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    composes = int(Path(str(out) + ".composes").read_text())
    return proc.returncode, records, composes, proc.stderr


def both(tmp_path: Path, args: list[str]):
    return run_app(tmp_path, False, args), run_app(tmp_path, True, args)


def test_a_run_composes_once_and_gets_hydras_config(tmp_path):
    args = ["run_id=fixed", "strategy=ddp", "launcher=pytorchjob", "launcher.image=registry.example.com/aegis:0.1.0",
            "model.lr=0.01", "+trainer.gradient_clip_val=1.0"]
    (code_twice, twice, n_twice, _), (code_once, once, n_once, err) = both(tmp_path, args)
    assert (code_twice, code_once) == (0, 0), err
    assert (n_twice, n_once) == (2, 1)
    assert len(once) == 1 and once == twice
    assert once[0]["hydra"]["mode"] == "RunMode.RUN"
    assert once[0]["hydra"]["overrides"]["hydra"] == ["hydra.mode=RUN"]


@pytest.mark.slow  # three python train.py processes (~4 s of CPU)
def test_a_multirun_gets_the_same_jobs(tmp_path):
    args = ["-m", "run_id=fixed", "model.lr=1e-3,1e-2", "trainer=smoke"]
    (code_twice, twice, n_twice, _), (code_once, once, n_once, err) = both(tmp_path, args)
    assert (code_twice, code_once) == (0, 0), err
    assert len(once) == 2 and once == twice
    assert n_once == n_twice - 1  # the sweep's own composition is reused; each job composes as before


def test_a_sweep_without_multirun_fails_as_hydra_fails(tmp_path):
    (code_twice, twice, _, err_twice), (code_once, once, _, err_once) = both(tmp_path, ["model.lr=1e-3,1e-2"])
    assert code_twice == code_once == 1
    assert twice == once == []
    assert "Ambiguous value for argument 'model.lr=1e-3,1e-2'" in err_once
    assert err_once == err_twice


@pytest.mark.slow  # two sweeps in fresh interpreters; a sweep composing once: test_a_multirun_gets_the_same_jobs
def test_a_mode_set_in_a_config_file_still_dispatches(tmp_path):
    extra = tmp_path / "extra_conf" / "experiment"
    extra.mkdir(parents=True)
    (extra / "lr_sweep.yaml").write_text(textwrap.dedent("""\
        # @package _global_
        hydra:
          mode: MULTIRUN
          sweeper:
            params:
              model.lr: 1e-3,1e-2
        """))
    args = ["--config-dir", str(tmp_path / "extra_conf"), "experiment=lr_sweep", "run_id=fixed", "trainer=smoke"]
    (code_twice, twice, _, _), (code_once, once, _, err) = both(tmp_path, args)
    assert (code_twice, code_once) == (0, 0), err
    assert len(once) == 2 and once == twice
    assert {job["cfg"]["model"]["lr"] for job in once} == {1e-3, 1e-2}


def test_a_mandatory_group_left_unset_still_fails_a_run(tmp_path):
    extra = tmp_path / "extra_conf"
    extra.mkdir()
    (extra / "needs_model.yaml").write_text(textwrap.dedent("""\
        defaults:
          - train
          - override model: ???
          - _self_
        """))
    args = ["--config-dir", str(extra), "--config-name", "needs_model", "run_id=fixed"]
    (code_twice, twice, _, err_twice), (code_once, once, _, err_once) = both(tmp_path, args)
    assert code_twice == code_once == 1
    assert twice == once == []
    assert "You must specify 'model'" in err_once
    assert err_once == err_twice

