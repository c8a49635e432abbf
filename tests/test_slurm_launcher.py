"""launcher=slurm without a cluster: the batch script, the rules, SLURM's words parsed.

The same behaviours against a real SLURM cluster: tests/slurm/ (make test-slurm).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from aegis.config.validation import problems
from aegis.errors import Problems
from aegis.launch import get_launcher
from aegis.launch.base import RunContext
from aegis.core.lifecycle import JobRef, State
from aegis.launch.slurm import cluster, preflight, states, times
from aegis.launch.slurm.cluster import Node, Partition, SlurmJob
from aegis.launch.slurm.render import Request, memory_mb, render

RUN_ID = "2026-01-01_00-00-00_abcdef"


def _ctx(*overrides: str) -> RunContext:
    return RunContext(run_dir=Path("/runs/r1"), run_id=RUN_ID, task_overrides=tuple(overrides),
                      config_name="train", entrypoint="/repo/train.py")


def _script(compose, *overrides: str) -> str:
    cfg = compose("launcher=slurm", *overrides)
    return render(cfg, _ctx("launcher=slurm", *overrides), {"AEGIS_LAUNCH": "{}"}).script


def _sentences(compose, *overrides: str) -> list[str]:
    return problems(compose("launcher=slurm", *overrides)).sentences


# ------------------------------------------------------------------ the batch script


def test_the_batch_script_asks_for_the_gang_a_warning_signal_and_requeue(compose):
    script = _script(compose, "strategy=ddp", "launcher.nodes=2", "launcher.tasks_per_node=4",
                     "launcher.gpus_per_node=4", "trainer.accelerator=gpu", "launcher.partition=gpu",
                     "launcher.time=2-00:00", "launcher.mem=64G", "launcher.max_requeues=5")
    directives = [line.split(" ", 1)[1] for line in script.splitlines() if line.startswith("#SBATCH")]
    for expected in ("--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--partition=gpu",
                     "--time=2-00:00:00", "--mem=64G", "--signal=B:USR1@120", "--requeue", "--open-mode=append",
                     f"--job-name=aegis-{RUN_ID}", "--output=/runs/r1/slurm-%j.out"):
        assert expected in directives, (expected, directives)
    command = shlex.split(script.split("exec ", 1)[1].replace("\\\n", " "))
    assert command[1:3] == ["-m", "aegis.launch.slurm.batch"] and "--max-requeues=5" in command
    srun = command.index("srun")
    task = command[srun:]
    assert "/repo/train.py" in task and "launcher=local" in task and f"run_id={RUN_ID}" in task
    assert "hydra.run.dir=/runs/r1" in task
    assert not any(arg.startswith("launcher.") for arg in task), "the launcher's own keys stay with the parent"
    assert "export AEGIS_SUPERVISED=1" in script  # job.json stays the SLURM job's, not a task's


def test_no_requeues_asks_slurm_not_to_requeue_either(compose):
    script = _script(compose, "launcher.max_requeues=0")
    assert "#SBATCH --no-requeue" in script and "#SBATCH --requeue" not in script


def test_setup_lines_and_extra_sbatch_options_are_kept_in_order(compose):
    script = _script(compose, "launcher.setup=['module load cuda','source /opt/env.sh']",
                     "launcher.sbatch_args=['--reservation=maint']")
    assert "#SBATCH --reservation=maint" in script
    assert script.index("module load cuda") < script.index("source /opt/env.sh") < script.index("exec ")


def test_the_dry_run_prints_the_script_and_submits_nothing(compose, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cluster, "submit", lambda *a, **k: pytest.fail("a dry run must not call sbatch"))
    cfg = compose("launcher=slurm", "launcher.dry_run=true")
    ctx = RunContext(run_dir=tmp_path / "run", run_id="dry", task_overrides=(), config_name="train")
    launcher = get_launcher("slurm")
    assert launcher.launch(cfg, ctx) == 0
    out = capsys.readouterr().out
    assert out.startswith("#!/bin/bash") and (tmp_path / "run" / "slurm-job.sh").read_text() == out
    assert not (tmp_path / "run" / "job.json").exists()


# ------------------------------------------------------------------ rules, before anything exists


@pytest.mark.parametrize("overrides, words", [
    (["launcher.time=abc"], "launcher.time='abc' is not a SLURM time limit"),
    (["launcher.time=00:01:00"], "launcher.time=00:01:00 ends before the warning signal"),
    (["launcher.partition=a b"], "launcher.partition='a b' is not a SLURM partition name"),
    (["launcher.mem=8GB"], "launcher.mem='8GB' is not an sbatch --mem value"),
    (["launcher.sbatch_args=['--time=5']"], "sets what launcher.time says"),
    (["launcher.sbatch_args=['--output=x']"], "is an option Aegis sets itself"),
    (["launcher.sbatch_args=['-p debug']"], "is not one long sbatch option"),
    (["launcher.tasks_per_node=2"], "starts 2 tasks but strategy=single trains in one: add strategy=ddp"),
    (["strategy=ddp", "launcher.tasks_per_node=2", "strategy.devices=4"],
     "strategy.devices=4 disagrees with launcher.tasks_per_node=2"),
    (["trainer.accelerator=gpu"], "needs GPUs asked for: expected launcher.gpus_per_node=1"),
    (["strategy=ddp", "trainer.accelerator=gpu", "launcher.gpus_per_node=4", "launcher.tasks_per_node=2"],
     "expected launcher.tasks_per_node=4"),
    (["launcher.python=venv/bin/python"], "launcher.python='venv/bin/python' is not an absolute path"),
    (["launcher.signal_lead_s=0"], "launcher.signal_lead_s=0 is invalid"),
])
def test_a_bad_request_is_one_sentence_naming_the_key(compose, overrides, words):
    found = _sentences(compose, *overrides)
    assert len(found) == 1 and words in found[0], found


def test_the_defaults_fit_a_small_partition(compose):
    cfg = compose("launcher=slurm")
    assert _sentences(compose) == []
    assert (cfg.launcher.nodes, cfg.launcher.tasks_per_node, cfg.launcher.cpus_per_task, cfg.launcher.mem) == (1, 1, 1, None)


def test_the_supervisor_ddp_command_needs_no_extra_keys(compose):
    assert _sentences(compose, "strategy=ddp", "launcher.nodes=2", "launcher.tasks_per_node=2") == []


@pytest.mark.parametrize("text, seconds", [("90", 5400), ("1:30", 90), ("02:00:00", 7200), ("1-0", 86400),
                                           ("1-02:03", 93780), ("0-00:00:30", 30), ("UNLIMITED", None), ("0", None),
                                           ("1:2:3:4", None), ("-5", None)])
def test_slurm_time_limits_parse_as_sbatch_reads_them(text, seconds):
    assert times.seconds(text) == seconds


def test_memory_suffixes():
    assert (memory_mb("512"), memory_mb("8G"), memory_mb("1T"), memory_mb(None)) == (512, 8192, 1048576, None)


# ------------------------------------------------------------------ the cluster's answers


def _with_cluster(monkeypatch, parts, nodes):
    monkeypatch.setattr(cluster, "partitions", lambda: {p.name: p for p in parts})
    monkeypatch.setattr(cluster, "nodes", lambda name: [n for n in nodes if name in n.partitions])


def _request(**changes) -> Request:
    base = dict(partition=None, nodes=1, tasks_per_node=1, cpus_per_task=1, gpus_per_node=0, memory_mb=None,
                time_s=3600)
    return Request(**{**base, **changes})


SMALL = ([Partition("debug", default=True, max_time="02:00:00"),
          Partition("down", state="DOWN")],
         [Node("n1", cpus=2, memory_mb=4000, partitions=("debug",))])


@pytest.mark.parametrize("changes, words", [
    (dict(partition="gpu"), "launcher.partition=gpu is not a partition of this SLURM cluster: expected one of debug, down."),
    (dict(partition="down"), "launcher.partition=down is DOWN"),
    (dict(time_s=3 * 3600), "launcher.time=03:00:00 exceeds the MaxTime of the default partition (debug)"),
    (dict(nodes=2), "launcher.nodes=2 cannot start on the default partition (debug), which has 1 node"),
    (dict(gpus_per_node=1), "launcher.gpus_per_node=1 cannot be met on the default partition (debug): its nodes have no GPUs"),
    (dict(tasks_per_node=2, cpus_per_task=4), "= 8 CPUs per node cannot be met"),
    (dict(memory_mb=8192), "launcher.mem=8192M per node cannot be met"),
])
def test_preflight_says_why_a_job_could_never_start(monkeypatch, changes, words):
    _with_cluster(monkeypatch, *SMALL)
    found = Problems()
    preflight.check(_request(**changes), found)
    assert len(found.sentences) == 1 and words in found.sentences[0], found.sentences


def test_preflight_passes_a_request_that_fits(monkeypatch):
    _with_cluster(monkeypatch, *SMALL)
    found = Problems()
    preflight.check(_request(tasks_per_node=2, memory_mb=1024), found)
    assert not found


def test_scontrol_lines_with_spaces_in_values_parse():
    line = ("JobId=42 JobName=aegis-r1 UserId=root(0) JobState=PENDING Reason=BeginTime Dependency=(null) "
            "Requeue=1 Restarts=1 ExitCode=0:15 Command=/runs/my dir/slurm-job.sh WorkDir=/runs/my dir "
            "StdOut=/runs/my dir/slurm-42.out")
    pairs = cluster.parse_pairs(line)
    assert pairs["Command"] == "/runs/my dir/slurm-job.sh" and pairs["WorkDir"] == "/runs/my dir"
    assert pairs["UserId"] == "root(0)" and pairs["Restarts"] == "1"


def test_gpus_in_gres():
    assert cluster.gpus_in("gpu:a100:4(S:0-1),nic:1") == 4 and cluster.gpus_in("(null)") == 0
    assert cluster.gpus_in("gpu:2,gpu:v100:1") == 3


@pytest.mark.parametrize("job, recorded, expected", [
    (SlurmJob("1", "PENDING", reason="Resources"), None, (State.queued, "pending: Resources", None)),
    (SlurmJob("1", "PENDING", reason="BeginTime", restarts=2), None,
     (State.queued, "requeued (restart 2), waiting: BeginTime", None)),
    (SlurmJob("1", "RUNNING"), "running", (State.running, None, None)),
    (SlurmJob("1", "COMPLETED", exit_code=0, signal=0), "completed", (State.succeeded, None, 0)),
    (SlurmJob("1", "FAILED", exit_code=3, signal=0), "failed", (State.failed, "exited with code 3", 3)),
    (SlurmJob("1", "CANCELLED", exit_code=0, signal=15), "cancelled", (State.cancelled, "cancelled (scancel)", 143)),
    (SlurmJob("1", "OUT_OF_MEMORY", exit_code=0, signal=9), "killed", (State.failed, None, 137)),
])
def test_slurm_states_become_aegis_states(job, recorded, expected):
    state, reason, code = states.describe(job, recorded)
    assert (state, code) == (expected[0], expected[2])
    if expected[1] is not None:
        assert reason == expected[1]


def test_a_gang_stopped_with_its_requeues_spent_is_preempted_not_failed():
    state, reason, code = states.describe(SlurmJob("7", "FAILED", exit_code=143, signal=0), "preempted")
    assert (state, code) == (State.preempted, 143) and "max_requeues" in reason


def test_a_planted_job_json_naming_another_job_is_refused(monkeypatch, tmp_path):
    """cancel acts only on the job this run submitted: name and console file must be the run's."""
    launcher = get_launcher("slurm")
    ref = JobRef(launcher="slurm", run_id="r1", run_dir=str(tmp_path), kind="SlurmJob", name="aegis-r1",
                 backend={"job_id": "99"})
    monkeypatch.setattr(cluster, "job", lambda job_id: SlurmJob("99", "RUNNING", name="someone-elses",
                                                               stdout="/home/x/out.txt"))
    cancelled = []
    monkeypatch.setattr(cluster, "cancel", lambda *a, **k: cancelled.append(a))
    with pytest.raises(Exception, match="not run r1's job"):
        launcher.cancel(ref)
    assert not cancelled and not (tmp_path / "cancel.requested").exists()
    monkeypatch.setattr(cluster, "job", lambda job_id: SlurmJob("99", "RUNNING", name="aegis-r1",
                                                               stdout="/elsewhere/slurm-99.out"))
    with pytest.raises(Exception, match="outside run r1's dir"):
        launcher.cancel(ref)
    assert not cancelled


@pytest.mark.parametrize("strategy", ["single", "ddp"])
def test_lightning_never_requeues_a_slurm_task_itself(compose, monkeypatch, strategy):
    """Lightning's SLURMEnvironment defaults to auto_requeue=True (SIGUSR1 -> hpc_ckpt_N.ckpt and
    its own scontrol requeue), also for a one-task job; Aegis's supervisor owns requeueing."""
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    from aegis.training.topology import resolve_topology

    for key, value in {"SLURM_NTASKS": "2" if strategy == "ddp" else "1", "SLURM_NTASKS_PER_NODE": "2",
                       "SLURM_NNODES": "1", "SLURM_JOB_NAME": "aegis-r1", "SLURM_JOB_ID": "5"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    topology = resolve_topology(compose(f"strategy={strategy}").strategy)
    environments = [p for p in topology.plugins if isinstance(p, SLURMEnvironment)]
    assert len(environments) == 1 and environments[0].auto_requeue is False


def test_the_readmes_submitit_ddp_command_is_not_refused_as_a_local_gang(compose):
    """submitit starts one SLURM task per device: the submitting process is no gang of its own
    (it was refused with "needs one process per device, which launcher=local does not start")."""
    from hydra.core.hydra_config import HydraConfig

    cfg = compose("hydra/launcher=submitit_slurm", "strategy=ddp", "strategy.devices=2",
                  "hydra.launcher.tasks_per_node=2", hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    assert problems(cfg).sentences == []
    assert (cfg.hydra.launcher.cpus_per_task, cfg.hydra.launcher.mem_gb) == (1, None)  # fits a small partition


def test_a_submitit_time_limit_below_its_signal_delay_is_refused(compose):
    """timeout_min=1 with the 120 s signal delay requeued a job 27 s in, forever."""
    from hydra.core.hydra_config import HydraConfig

    from aegis.errors import ConfigError
    from aegis.launch.slurm.submitit import check

    cfg = compose("hydra/launcher=submitit_slurm", "hydra.launcher.timeout_min=1", hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with pytest.raises(ConfigError, match=r"hydra.launcher.timeout_min=1 ends before the requeue signal"):
        check(cfg)


def test_a_fault_rank_counts_slurm_tasks(compose, monkeypatch):
    """fault.rank=1 in a 2-task SLURM job: each task's own check (launcher=local) counted 1 rank
    and refused it; the submitting check did not know launcher=slurm's shape."""
    assert _sentences(compose, "strategy=ddp", "launcher.tasks_per_node=2", "fault=raise", "fault.rank=1") == []
    assert "beyond the run's 2 ranks" in _sentences(compose, "strategy=ddp", "launcher.tasks_per_node=2",
                                                      "fault=raise", "fault.rank=2")[0]
    monkeypatch.setenv("SLURM_JOB_ID", "5")
    monkeypatch.setenv("SLURM_NTASKS", "2")
    assert problems(compose("strategy=ddp", "fault=raise", "fault.rank=1")).sentences == []


def test_an_experiment_that_sets_a_launcher_key_the_tasks_cannot_read_is_refused_before_sbatch(tmp_path):
    """The srun tasks compose with launcher=local: a file setting launcher.tasks_per_node would
    stop every task after the job started (the same as experiment=synthetic_ddp under torchrun)."""
    from helpers import run_train

    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    (tmp_path / "conf" / "experiment" / "slurmy.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /launcher: slurm\nlauncher:\n  tasks_per_node: 1\n")
    root = tmp_path / "out"
    done = run_train([f"--config-dir={tmp_path / 'conf'}", "experiment=slurmy", "launcher.dry_run=true"], root)
    assert done.returncode == 1 and "'experiment/slurmy' sets launcher.tasks_per_node, which the SLURM tasks " \
                                   "cannot read" in done.stderr, done.stderr
    assert not root.exists()


@pytest.mark.parametrize("launcher", [["launcher=slurm"], ["launcher=torchrun", "strategy=ddp"]])
def test_a_sweeps_base_config_is_not_refused_as_a_childs(tmp_path, launcher):
    """-m model.lr=0.1,0.2: the base config's overrides hold the sweep, which no single child
    composes; each job is checked with its own value (it was 'cannot compose ... has several values')."""
    from helpers import run_train

    root = tmp_path / "out"
    dry = ["launcher.dry_run=true"] if launcher[0] == "launcher=slurm" else ["launcher.nproc_per_node=0"]
    done = run_train(["-m", *launcher, "model.lr=0.1,0.2", *dry], root)
    assert "several values" not in done.stderr, done.stderr
    if launcher[0] == "launcher=slurm":
        assert done.returncode == 0 and done.stdout.count("#!/bin/bash") == 2, done.stderr
    else:  # refused for its own reason, once, before anything exists
        assert done.returncode == 1 and "launcher.nproc_per_node=0 is invalid" in done.stderr and not root.exists()
