"""launcher=slurm on a real SLURM cluster (the ``slurm_cluster`` fixture): the DDP gang, requeue,
time limit, preemption, the lifecycle by job id, and bad input before anything is created.

Each job trains for real (2 srun tasks forming a gloo DDP gang, or one task); ``SLOW`` makes
epochs a few seconds long so that a signal lands mid-epoch. What each fault may lose is
"the steps since the signal": every stopped attempt is recorded ``preempted`` at a step,
and the next attempt resumes from ``last.ckpt``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import REPO, run_dirs, run_train, summary

pytestmark = pytest.mark.slurm

GANG = ["launcher=slurm", "strategy=ddp", "launcher.tasks_per_node=2"]
SLOW = ["data=synthetic", "data.num_samples=60000", "logger=csv"]  # epochs of seconds: signals land mid-epoch


def aegis(root: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aegis", "--root", str(root), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "AEGIS_OUTPUT_ROOT": str(root)})


def follow(root: Path, run_id: str) -> subprocess.Popen:
    """``aegis logs RUN --follow`` in the background, as a second terminal would."""
    return subprocess.Popen([sys.executable, "-m", "aegis", "--root", str(root), "logs", run_id, "--follow"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def submit(root: Path, run_id: str, *args: str) -> tuple[Path, str]:
    """Submit without waiting; (run dir, SLURM job id)."""
    done = run_train([*args, f"run_id={run_id}", "launcher.wait=false"], root, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = root / "train" / "runs" / run_id
    return run_dir, json.loads((run_dir / "job.json").read_text())["backend"]["job_id"]


def wait_for_text(path: Path, pattern: str, timeout: float) -> re.Match:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        text = path.read_text(errors="replace") if path.exists() else ""
        match = re.search(pattern, text)
        if match:
            return match
        time.sleep(0.5)
    raise AssertionError(f"{pattern!r} not in {path} after {timeout}s:\n" + (path.read_text()[-3000:] if path.exists() else "(no file)"))


def finish(process: subprocess.Popen, timeout: float) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"aegis logs --follow did not end in {timeout}s:\n{err[-3000:]}")
    return process.returncode, out, err


@pytest.mark.parametrize("nodes, tasks", [(1, 2), (2, 1)])
def test_a_two_task_ddp_job_is_one_run_with_world_size_two(slurm_cluster, tmp_path, nodes, tasks):
    """Two tasks on one node, and one task on each of two nodes (two slurmd on this host)."""
    root = tmp_path / "out"
    done = run_train(["launcher=slurm", "strategy=ddp", f"launcher.nodes={nodes}", f"launcher.tasks_per_node={tasks}",
                      "trainer=smoke", "run_id=ddp"], root, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = run_dirs(root)
    record, ref = summary(run_dir), json.loads((run_dir / "job.json").read_text())
    job_id = ref["backend"]["job_id"]
    assert record["status"] == "completed" and record["world_size"] == 2 and record["slurm_job_id"] == job_id
    assert record["num_nodes"] == nodes
    assert (run_dir / "checkpoints" / "last.ckpt").is_file() and (run_dir / "train.rank1.log").is_file()
    assert len(json.loads((run_dir / "tracking.json").read_text())) > 0  # one tracking run, rank 0's
    assert slurm_cluster.state(job_id) == "COMPLETED"
    assert f"SLURM job {job_id}: succeeded" in done.stderr  # the submitter followed it to its end
    status = aegis(root, "status", "ddp")
    assert status.stdout.startswith("succeeded") and f"SLURM job {job_id}" in status.stdout, status.stdout
    assert "Done:" in aegis(root, "logs", "ddp").stdout  # the job's console (every task, labelled)
    assert "Done:" not in aegis(root, "logs", "ddp", "--replica", "rank1").stdout  # rank 1's own log


def test_scontrol_requeue_mid_epoch_resumes_at_the_saved_step_and_the_follower_follows_it(slurm_cluster, tmp_path):
    root = tmp_path / "out"
    run_dir, job_id = submit(root, "rq", *GANG, *SLOW, "trainer.max_epochs=3")
    follower = follow(root, "rq")
    wait_for_text(run_dir / f"slurm-{job_id}.out", r"epoch 1/3", timeout=180)
    time.sleep(1.0)  # into epoch 2
    slurm_cluster.run(["scontrol", "requeue", job_id])
    code, out, err = finish(follower, timeout=300)
    assert code == 0, err[-3000:]
    first, second = summary(run_dir)["attempts"]
    assert first["status"] == "preempted" and second["status"] == "completed", summary(run_dir)["attempts"]
    assert second["resumed_from"].endswith("last.ckpt") and second["slurm_restart"] == 1
    stopped = re.search(r"Preempted \(SIGTERM\) at epoch (\d+), step (\d+)", out)
    assert stopped and int(stopped.group(2)) == first["global_step"], out[-3000:]
    steps_per_epoch = second["global_step"] // 3
    assert first["global_step"] % steps_per_epoch, "the signal landed mid-epoch: that step was saved"
    assert "Resuming from" in out and "Done:" in out  # one follow, across the requeue


def test_the_time_limit_checkpoints_requeues_and_a_requeued_job_can_be_cancelled(slurm_cluster, tmp_path):
    """--time=3 min with a 60 s lead: USR1 comes 60-120 s in (SLURM may send it a minute
    early); the gang saves, the job requeues itself and resumes; aegis cancel then ends it."""
    root = tmp_path / "out"
    run_dir, job_id = submit(root, "tl", *GANG, *SLOW, "trainer.max_epochs=1000", "launcher.time=3",
                             "launcher.signal_lead_s=60")
    console = run_dir / f"slurm-{job_id}.out"
    wait_for_text(console, r"the time limit is near", timeout=200)
    wait_for_text(console, r"is requeued \(requeue 1 of 3\)", timeout=60)
    wait_for_text(console, r"0: .*Resuming from .*last\.ckpt", timeout=120)
    resumed = summary(run_dir)["attempts"][0]
    assert resumed["status"] == "preempted" and resumed["slurm_restart"] == 0
    wait_for_text(console, rf"epoch {resumed['epochs_completed'] + 1}/1000", timeout=120)
    assert not list(run_dir.glob("**/hpc_ckpt_*.ckpt")), "Lightning's own SLURM requeue must stay off"
    cancelled = aegis(root, "cancel", "tl")
    assert cancelled.returncode == 0, cancelled.stderr
    slurm_cluster.wait_for(job_id, {"CANCELLED"}, timeout=60)
    attempts = summary(run_dir)["attempts"]
    assert [a["status"] for a in attempts] == ["preempted", "cancelled"], attempts
    stops = json.loads((run_dir / "slurm.json").read_text())["stops"]
    assert stops[0]["why"] == "the time limit is near" and stops[0]["requeued"] is True
    time.sleep(3)
    assert slurm_cluster.state(job_id) == "CANCELLED", "a cancelled job must not come back"
    status = aegis(root, "status", "tl")
    assert status.stdout.startswith("cancelled"), status.stdout


def test_a_preempted_job_checkpoints_requeues_itself_and_completes(slurm_cluster, tmp_path):
    """PreemptMode=REQUEUE with GraceTime: SLURM SIGTERMs only the tasks and would record the
    job FAILED/COMPLETED, never requeued; the supervisor requeues it."""
    root = tmp_path / "out"
    node = slurm_cluster.nodes[0]
    run_dir, job_id = submit(root, "pre", *GANG, *SLOW, "trainer.max_epochs=3",
                             f"launcher.sbatch_args=['--nodelist={node}']")
    follower = follow(root, "pre")
    wait_for_text(run_dir / f"slurm-{job_id}.out", r"epoch 1/3", timeout=180)
    urgent = slurm_cluster.sbatch("#!/bin/bash\nsleep 2\n", "-p", "urgent", f"--nodelist={node}",
                                  f"--cpus-per-task={slurm_cluster.node_cpus}", "--mem=100M",
                                  f"--output={tmp_path}/urgent.out")
    code, out, err = finish(follower, timeout=400)
    assert code == 0, err[-3000:]
    assert slurm_cluster.state(urgent) == "COMPLETED"
    attempts = summary(run_dir)["attempts"]
    assert [a["status"] for a in attempts] == ["preempted", "completed"], attempts
    # The supervisor requeues the job once the gang has stopped; a gang slower to exit than the
    # GraceTime (a loaded machine) is requeued by SLURM itself at the grace's end instead: either
    # way the job was requeued, not ended, and slurm.json (when the supervisor got to it) says so.
    earlier = [row for row in slurm_cluster.sacct(job_id) if row["JobID"] == job_id][:-1]
    assert earlier and earlier[0]["State"].split()[0] in ("REQUEUED", "PREEMPTED"), earlier
    if (run_dir / "slurm.json").exists():
        stops = json.loads((run_dir / "slurm.json").read_text())["stops"]
        assert stops[0]["why"].startswith("preempted") and stops[0]["requeued"] is True, stops


def test_a_pending_job_reports_slurms_reason_and_is_cancelled(slurm_cluster, tmp_path):
    root = tmp_path / "out"
    run_dir, job_id = submit(root, "pend", "launcher=slurm", "trainer=smoke",
                             "launcher.sbatch_args=['--begin=now+600']")
    status = aegis(root, "status", "pend")
    assert status.stdout.startswith("queued") and "BeginTime" in status.stdout, status.stdout
    listed = aegis(root, "list")
    assert re.search(r"pend\s+slurm\s+queued", listed.stdout), listed.stdout
    assert aegis(root, "cancel", "pend").returncode == 0
    slurm_cluster.wait_for(job_id, {"CANCELLED"}, timeout=30)
    followed = aegis(root, "logs", "pend", "--follow")
    assert followed.returncode == 143 and "cancelled" in followed.stderr, followed.stderr
    again = aegis(root, "cancel", "pend")
    assert again.returncode != 0 and "not running" in again.stderr, again.stderr


def test_a_multirun_submits_every_job_then_follows_them_together(slurm_cluster, tmp_path):
    root = tmp_path / "out"
    done = run_train(["-m", "launcher=slurm", "trainer=smoke", "logger=csv", "model.lr=0.01,0.02"], root,
                     timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    dirs = run_dirs(root)
    assert len(dirs) == 2 and all(summary(d)["status"] == "completed" for d in dirs)
    jobs = {json.loads((d / "job.json").read_text())["backend"]["job_id"] for d in dirs}
    assert len(jobs) == 2 and "Sweep outcome:" in done.stderr
    submitted = [m.start() for m in re.finditer(r"\[slurm\] submitted SLURM job", done.stderr)]
    followed = done.stderr.find("] [slurm] SLURM job")  # a follower's line: "[<run id>] [slurm] ..."
    assert len(submitted) == 2 and max(submitted) < followed, done.stderr[-3000:]  # both submitted, then followed


@pytest.mark.parametrize("overrides, words", [
    (["launcher.partition=nope"], "launcher.partition=nope is not a partition of this SLURM cluster: expected one of "
                                  "debug, urgent."),
    (["launcher.gpus_per_node=1", "trainer.accelerator=gpu"], "launcher.gpus_per_node=1 cannot be met on the "
                                                              "default partition (debug): its nodes have no GPUs"),
    (["launcher.nodes=3", "strategy=ddp"], "launcher.nodes=3 cannot start on the default partition (debug), which has 2 nodes"),
    (["launcher.mem=64G"], "launcher.mem=65536M per node cannot be met"),
])
def test_a_request_the_cluster_can_never_start_is_one_sentence_and_creates_nothing(slurm_cluster, tmp_path,
                                                                                    overrides, words):
    root = tmp_path / "out"
    done = run_train(["launcher=slurm", *overrides], root, timeout=60)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and len(lines) == 1 and words in lines[0], done.stderr
    assert not root.exists() or not any(root.iterdir())
    swept = run_train(["-m", "launcher=slurm", "model.lr=0.1,0.2", *overrides], root, timeout=60)
    assert swept.returncode == 1 and words in swept.stderr and (not root.exists() or not any(root.iterdir()))


def test_a_rank_that_fails_on_its_own_account_fails_the_job_and_is_named(slurm_cluster, tmp_path):
    """Rank 1 raises at step 5: the job fails with its code (not retried, not requeued), and the
    submitter, summary.json and aegis status name rank 1 and the exception."""
    root = tmp_path / "out"
    done = run_train([*GANG, "trainer=smoke", "fault=raise", "fault.rank=1", "fault.step=5", "run_id=boom"], root,
                     timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Run failed: rank 1: InjectedFault" in done.stderr
    run_dir = root / "train" / "runs" / "boom"
    job_id = json.loads((run_dir / "job.json").read_text())["backend"]["job_id"]
    assert slurm_cluster.state(job_id) == "FAILED"
    assert summary(run_dir)["attempts"][-1]["failure"]["rank"] == 1
    status = aegis(root, "status", "boom")
    assert status.stdout.startswith("failed") and "rank 1: InjectedFault" in status.stdout, status.stdout
