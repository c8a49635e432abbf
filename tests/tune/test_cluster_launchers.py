"""Hydra's cluster launchers with Aegis's settings: submitit (local, SLURM) and Ray."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from aegis.errors import ConfigError
from helpers import run_dirs, run_train, summary

DDP_2_NODES = ["hydra/launcher=submitit_slurm", "strategy=ddp", "strategy.devices=4", "strategy.num_nodes=2",
               "trainer.accelerator=gpu", "hydra.launcher.gpus_per_node=4", "run_id=slurm-ddp"]


@pytest.fixture()
def fake_srun(tmp_path, monkeypatch):
    """submitit's SLURM executor refuses to exist without ``srun`` on PATH; rendering needs no more."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_slurm_submission_for_two_node_ddp_has_tasks_gpus_and_signal(compose, fake_srun, tmp_path):
    pytest.importorskip("submitit")
    from hydra.core.hydra_config import HydraConfig

    from aegis.launch.slurm import check, render_sbatch

    cfg = compose(*DDP_2_NODES, hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    check(cfg)
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert params["max_num_timeout"] == 3  # submitit requeues; the job resumes from last.ckpt
    script = render_sbatch(params, tmp_path / "submitit" / "%j")
    flags = {line.split()[1] for line in script.splitlines() if line.startswith("#SBATCH")}
    assert {"--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--signal=USR2@120",
            "--open-mode=append", "--time=240"} <= flags
    assert "srun --unbuffered" in script and "submitit.core._submit" in script


@pytest.mark.parametrize(
    "extra, message",
    [
        (["hydra.launcher.tasks_per_node=2"], "hydra.launcher.tasks_per_node=2 must equal strategy.devices=4"),
        (["hydra.launcher.gpus_per_node=null"], "trainer.accelerator=gpu on SLURM needs GPUs requested"),
        (["strategy.num_nodes=null", "hydra.launcher.nodes=2"], "strategy.num_nodes must be set"),
    ],
)
def test_slurm_rules_fail_in_one_sentence(compose, extra, message):
    from hydra.core.hydra_config import HydraConfig

    from aegis.launch.slurm import check

    cfg = compose(*DDP_2_NODES, *extra, hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("=", "=")):
        check(cfg)


def test_slurm_tasks_become_the_ddp_gang_with_submitit_requeue(compose, monkeypatch):
    pytest.importorskip("lightning")
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    from aegis.config.resolvers import global_rank
    from aegis.training.topology import resolve_topology

    for key, value in {"SLURM_NTASKS": "8", "SLURM_NTASKS_PER_NODE": "4", "SLURM_NNODES": "2",
                       "SLURM_JOB_NAME": "train", "SLURM_PROCID": "5"}.items():
        monkeypatch.setenv(key, value)
    for key in ("TORCHELASTIC_RUN_ID", "RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    topology = resolve_topology(compose("strategy=ddp").strategy)
    assert (topology.devices, topology.num_nodes) == (4, 2)
    (env,) = topology.plugins
    assert isinstance(env, SLURMEnvironment) and env.auto_requeue is False
    assert global_rank() == 5  # only SLURM task 0 writes the run dir's files


def test_ray_launcher_settings_avoid_its_known_pitfalls(compose):
    cfg = compose("hydra/launcher=ray", hydra_config=True)
    ray_cfg = cfg.hydra.launcher.ray
    assert "object_store_memory" in ray_cfg.init and ray_cfg.init.object_store_memory is None
    assert ray_cfg.remote.num_gpus == 0 and ray_cfg.remote.num_cpus == 1


def _two_jobs(root: Path, launcher: str) -> list[Path]:
    proc = run_train(["-m", f"hydra/launcher={launcher}", "trainer=smoke", "logger=csv", "model.lr=0.01,0.001",
                      "run_id=two"], root, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dirs = run_dirs(root)
    assert [d.name for d in dirs] == ["0", "1"]
    lrs = []
    for d in dirs:
        s = summary(d)
        assert s["status"] == "completed" and s["run_id"] == f"two-{d.name}"
        lrs.append(OmegaConf.load(d / "config.yaml").model.lr)
    assert sorted(lrs) == [0.001, 0.01]
    return dirs


@pytest.mark.ray
def test_submitit_local_runs_a_two_job_multirun(tmp_path):
    pytest.importorskip("submitit")
    dirs = _two_jobs(tmp_path, "submitit_local")
    assert list((dirs[0].parent / ".submitit").iterdir())  # submitit's own job records


@pytest.mark.ray
def test_ray_launcher_runs_a_two_job_multirun_on_a_local_ray(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    _two_jobs(tmp_path, "ray")
