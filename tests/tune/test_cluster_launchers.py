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


def _sbatch_flags(cfg, folder: Path) -> set[str]:
    """The #SBATCH flags submitit writes for the composed ``hydra.launcher`` node."""
    from aegis.launch.slurm.submitit import render_sbatch

    script = render_sbatch(OmegaConf.to_container(cfg.hydra.launcher, resolve=True), folder / "%j")
    assert "srun --unbuffered" in script and "submitit.core._submit" in script  # the tasks run submitit's job
    return {line.split()[1] for line in script.splitlines() if line.startswith("#SBATCH")}


@pytest.mark.parametrize("devices, nodes", [(4, 2), (2, 1)])
def test_slurm_tasks_and_nodes_follow_the_strategy(compose, fake_srun, tmp_path, devices, nodes):
    """One SLURM task per device (or the gang hangs): hydra.launcher follows strategy.devices
    and strategy.num_nodes without being told, and the plugin accepts every key."""
    pytest.importorskip("submitit")
    from hydra.core.hydra_config import HydraConfig
    from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf

    from aegis.launch.slurm.submitit import check

    cfg = compose("hydra/launcher=submitit_slurm", "strategy=ddp", f"strategy.devices={devices}",
                  f"strategy.num_nodes={nodes}", "trainer.accelerator=gpu", f"hydra.launcher.gpus_per_node={devices}",
                  hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    check(cfg)
    OmegaConf.merge(OmegaConf.structured(SlurmQueueConf), OmegaConf.to_container(cfg.hydra.launcher))  # its schema
    flags = _sbatch_flags(cfg, tmp_path)
    assert {f"--nodes={nodes}", f"--ntasks-per-node={devices}", f"--gpus-per-node={devices}"} <= flags


def test_slurm_jobs_are_signalled_before_their_time_limit_and_requeued(compose, fake_srun, tmp_path):
    """submitit requeues a job SLURM signals (USR2) before its time limit, with the same
    config and run dir (training resumes from last.ckpt), appending to its logs."""
    pytest.importorskip("submitit")
    from hydra.core.hydra_config import HydraConfig

    cfg = compose(*DDP_2_NODES, hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert params["max_num_timeout"] >= 1  # submitit's requeue on timeout is on (its default is 0: off)
    assert 0 < params["signal_delay_s"] < params["timeout_min"] * 60  # the signal comes before the limit
    flags = _sbatch_flags(cfg, tmp_path)
    assert {f"--time={params['timeout_min']}", f"--signal=USR2@{params['signal_delay_s']}", "--open-mode=append"} <= flags

    shorter = compose(*DDP_2_NODES, "hydra.launcher.timeout_min=30", "hydra.launcher.signal_delay_s=90",
                      hydra_config=True)
    assert {"--time=30", "--signal=USR2@90"} <= _sbatch_flags(shorter, tmp_path / "shorter")


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

    from aegis.launch.slurm.submitit import check

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


@pytest.mark.parametrize("address", [None, "auto"])
def test_ray_launcher_hands_ray_a_cluster_safe_init_and_explicit_resources(compose, tmp_path, monkeypatch, address):
    """The plugin's own ``launch``, with Ray's entry points replaced by recorders: what it
    passes to ``ray.init`` (no object_store_memory, which Ray refuses when joining a cluster)
    and to ``ray.remote`` for each job (CPU and GPU counts always given: a task without
    num_gpus sees every GPU)."""
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    from types import SimpleNamespace

    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate
    from hydra_plugins.hydra_ray_launcher import _core, _launcher_util
    from hydra_plugins.hydra_ray_launcher._config import RayLauncherConf

    overrides = ["hydra/launcher=ray", f"paths.root={tmp_path}", "run_id=r"]
    if address:
        overrides.append(f"hydra.launcher.ray.init.address={address}")
    cfg = compose(*overrides, hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    OmegaConf.merge(OmegaConf.structured(RayLauncherConf), OmegaConf.to_container(cfg.hydra.launcher))  # its schema

    calls: dict[str, dict] = {}

    def remote(**options):
        calls["remote"] = options
        return lambda function: SimpleNamespace(remote=lambda **job: "job")

    ray = _launcher_util.ray
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **options: calls.setdefault("init", options))
    monkeypatch.setattr(ray, "remote", remote)
    monkeypatch.setattr(_core.ray, "get", lambda ref: ref)
    monkeypatch.setattr(_core, "configure_log", lambda *args: None)  # leave this process's logging alone

    launcher = instantiate(cfg.hydra.launcher)
    def load_sweep_config(config, job_overrides):  # as Hydra's loader: a fresh, writable job config
        job = config.copy()
        OmegaConf.set_readonly(job.hydra, False)
        return job

    loader = SimpleNamespace(load_sweep_config=load_sweep_config)
    launcher.setup(hydra_context=SimpleNamespace(config_loader=loader), task_function=lambda c: None, config=cfg)
    assert launcher.launch([["model.lr=0.1"]], initial_job_idx=0) == ["job"]

    init, remote_options = calls["init"], calls["remote"]
    assert init["address"] == address
    assert init.get("object_store_memory") is None  # the plugin's 75 MiB default was not injected
    assert remote_options["num_gpus"] == 0 and remote_options["num_cpus"] >= 1  # a CPU job: no GPU reserved
    assert remote_options["max_calls"] == 1  # a fresh worker per job: no state leaks between jobs


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
