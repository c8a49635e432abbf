"""The test cluster itself, and the SLURM 22.05 behaviours a launcher is designed around,
measured on it (each docstring says what was observed; the asserts hold it to that).

Jobs record what happens to them as lines ``EVENT <epoch> state=<JobState> restart=<n>``
(JobState as ``scontrol show job`` has it at that moment) in a file the test reads. Tests
that must not disturb one another pin their jobs to a node: the background time-limit job
runs on n2 from the start of the module, the preemption tests on n1.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

DONE = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "PREEMPTED", "NODE_FAIL", "OUT_OF_MEMORY"}

# Shell functions every job script starts with: rec EVENT [extra] appends one record.
PRELUDE = """#!/bin/bash
LOG={log}
rec() {{
  local st
  st=$(scontrol show job -o "$SLURM_JOB_ID" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2)
  echo "$1 $(date +%s.%N) state=${{st:-?}} restart=${{SLURM_RESTART_COUNT:-0}} $2" >> "$LOG"
}}
idle() {{ while true; do sleep 0.5; done; }}
"""


def script(log: Path, body: str) -> str:
    return PRELUDE.format(log=log) + body


def records(log: Path) -> list[dict]:
    """The job's records, oldest first: event, t (epoch float), state, restart, extra."""
    out = []
    if not log.exists():
        return out
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        rec = {"event": parts[0], "t": float(parts[1]), "extra": " ".join(p for p in parts[2:] if "=" not in p)}
        rec.update(p.split("=", 1) for p in parts[2:] if "=" in p)
        out.append(rec)
    return out


def events(log: Path, name: str) -> list[dict]:
    return [r for r in records(log) if r["event"] == name]


def wait_until(what: str, check, timeout: float, poll: float = 0.3):
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(poll)


def sacct_runs(cluster, job_id: str, count: int, timeout: float = 30) -> list[dict]:
    """The allocation's sacct rows (one per run, oldest first) once there are ``count`` of
    them and the last is no longer RUNNING/PENDING (slurmdbd lags the controller a little)."""
    def ready():
        runs = [r for r in cluster.sacct(job_id) if r["JobID"] == str(job_id)]
        if len(runs) >= count and runs[count - 1]["State"] not in {"RUNNING", "PENDING"}:
            return runs
        return None
    return wait_until(f"{count} sacct row(s) of job {job_id}", ready, timeout)


# --------------------------------------------------------------------------------------------
# The background job: a one-minute time limit with --signal=B:USR1@30, on n2 from the start.
# --------------------------------------------------------------------------------------------
USR1_BEFORE_S = 30


@pytest.fixture(scope="module", autouse=True)
def time_limit_job(slurm_cluster, tmp_path_factory):
    """Submitted when the module starts, so that its minute overlaps the other tests."""
    log = tmp_path_factory.mktemp("timelimit") / "events.log"
    body = """rec start
trap 'rec USR1' USR1
on_term() { rec TERM; out=$(scontrol requeue "$SLURM_JOB_ID" 2>&1); rec requeue-rc=$? "$out"; exit 0; }
trap on_term TERM
idle
"""
    job_id = slurm_cluster.sbatch(script(log, body), "-w", "n2", "-n1", "--time=1",
                                  f"--signal=B:USR1@{USR1_BEFORE_S}", "-J", "timelimit", "-o", "/dev/null")
    yield job_id, log, time.time()
    slurm_cluster.cancel(job_id)


# --------------------------------------------------------------------------------------------
def test_cluster_is_up(slurm_cluster):
    """Both nodes registered with this machine's CPUs; both partitions; accounting answers."""
    nodes = slurm_cluster.run(["sinfo", "-h", "-N", "-o", "%N %c %P"]).stdout.split("\n")
    seen = {tuple(line.split()) for line in nodes if line.strip()}
    for node in slurm_cluster.nodes:
        assert (node, str(slurm_cluster.node_cpus), "debug*") in seen
        assert (node, str(slurm_cluster.node_cpus), "urgent") in seen
    assert slurm_cluster.partitions == ("debug", "urgent")
    clusters = slurm_cluster.run(["sacctmgr", "-n", "-P", "list", "cluster", "format=Cluster"]).stdout.split()
    assert slurm_cluster.cluster_name in clusters


def test_two_task_job_completes(slurm_cluster, tmp_path):
    """sbatch -N2 -n2 + srun: one task per node, COMPLETED 0:0 for the allocation, the batch
    step and the srun step in sacct."""
    out = tmp_path / "out.txt"
    job_id = slurm_cluster.sbatch(
        "#!/bin/bash\nsrun bash -c 'echo task=$SLURM_PROCID ntasks=$SLURM_NTASKS node=$SLURMD_NODENAME'\n",
        "-N2", "-n2", "-o", str(out))
    try:
        assert slurm_cluster.wait_for(job_id, DONE, timeout=60) == "COMPLETED"
        lines = sorted(out.read_text().split("\n"))
        tasks = sorted(line for line in lines if line.startswith("task="))
        assert [t.split()[0] for t in tasks] == ["task=0", "task=1"]
        assert all("ntasks=2" in t for t in tasks)
        assert {t.split("node=")[1] for t in tasks} == {"n1", "n2"}
        rows = wait_until("sacct rows", lambda: (
            r := {row["JobID"]: row for row in slurm_cluster.sacct(job_id)}) and
            all(k in r for k in (job_id, f"{job_id}.batch", f"{job_id}.0")) and r, timeout=30)
        for key in (job_id, f"{job_id}.batch", f"{job_id}.0"):
            assert rows[key]["State"] == "COMPLETED", rows[key]
            assert rows[key]["ExitCode"] == "0:0", rows[key]
        assert rows[job_id]["Restarts"] == "0"
    finally:
        slurm_cluster.cancel(job_id)


def test_scontrol_requeue_restarts_with_count(slurm_cluster, tmp_path):
    """``scontrol requeue`` of a running job: the job goes back to PENDING (Reason=BeginTime),
    starts again no sooner than cred_expire + 1 s later (SLURM's default cred_expire is 120 s:
    on a stock cluster a requeued job waits two minutes; this one sets 10 s), and the second
    run sees SLURM_RESTART_COUNT=1 (unset on the first). sacct -D keeps the first run as
    REQUEUED; scontrol's Restarts=1."""
    log = tmp_path / "events.log"
    job_id = slurm_cluster.sbatch(script(log, "rec start\nidle\n"), "-w", "n1", "-n1", "-o", "/dev/null")
    try:
        wait_until("first start", lambda: events(log, "start"), timeout=60)
        requeued_at = time.time()
        slurm_cluster.run(["scontrol", "requeue", job_id])
        assert slurm_cluster.wait_for(job_id, {"PENDING"}, timeout=10) == "PENDING"
        assert slurm_cluster.job(job_id)["Reason"] == "BeginTime"
        starts = wait_until("second start", lambda: len(events(log, "start")) >= 2 and events(log, "start"),
                            timeout=slurm_cluster.cred_expire_s + 40)
        print(f"requeue: running again {starts[1]['t'] - requeued_at:.1f}s after scontrol requeue "
              f"(cred_expire {slurm_cluster.cred_expire_s})")
        assert [s["restart"] for s in starts] == ["0", "1"]  # the first run has no SLURM_RESTART_COUNT
        assert starts[1]["t"] - requeued_at >= slurm_cluster.cred_expire_s
        assert slurm_cluster.job(job_id)["Restarts"] == "1"
        runs = [r for r in slurm_cluster.sacct(job_id) if r["JobID"] == job_id]
        assert [r["State"] for r in runs] == ["REQUEUED", "RUNNING"]
    finally:
        slurm_cluster.cancel(job_id)


# --------------------------------------------------------------------------------------------
# Preemption: debug (PreemptMode=REQUEUE, GraceTime=grace_s) jobs on n1 give way to an
# --exclusive urgent job on n1.
# --------------------------------------------------------------------------------------------
STEP_JOB = """rec batch-start
trap 'rec batch-TERM' TERM
srun -n1 bash -c '
  LOG={log}; {rec_def}
  rec step-start
  on_term() {{
    rec step-TERM
    case {mode} in
      exit0) exit 0;;
      exit143) exit 143;;
      requeue) out=$(scontrol requeue "$SLURM_JOB_ID" 2>&1); rec step-requeue-rc=$? "$out"; exit 0;;
    esac
  }}
  trap on_term TERM
  while true; do sleep 0.5; done'
rc=$?
rec batch-srun-rc=$rc
exit $rc
"""

BATCH_ONLY_JOB = """rec batch-start
on_term() { rec batch-TERM; exit 0; }
trap on_term TERM
idle
"""


def _rec_def() -> str:
    """``rec`` for inside a single-quoted ``bash -c '...'`` (no single quotes in it)."""
    return ('rec() { echo "$1 $(date +%s.%N) state=$(scontrol show job -o $SLURM_JOB_ID | grep -o "JobState=[A-Z_]*" '
            '| cut -d= -f2) restart=${SLURM_RESTART_COUNT:-0} $2" >> $LOG; }')


def step_job(tmp_path: Path, name: str) -> tuple[str, str]:
    """(body, event that says it is ready) of a job whose srun step ends as ``name`` says."""
    return STEP_JOB.format(log=tmp_path / f"{name}.log", rec_def=_rec_def(), mode=name), "step-start"


def _preempt(cluster, tmp_path, jobs: dict[str, tuple[str, str]]):
    """Start the given debug jobs on n1 (name -> (body, ready event)), wait until each has
    recorded its ready event, then submit an --exclusive urgent job on n1.
    Returns (job ids by name, logs by name, epoch of the urgent submit, urgent job id)."""
    ids, logs = {}, {}
    for name, (body, _) in jobs.items():
        logs[name] = tmp_path / f"{name}.log"
        ids[name] = cluster.sbatch(script(logs[name], body), "-p", "debug", "-w", "n1", "-n1", "-J", name,
                                   "-o", str(tmp_path / f"{name}.out"))
    for name, (_, ready) in jobs.items():
        wait_until(f"{name}: {ready}", lambda n=name, e=ready: events(logs[n], e), timeout=60)
    submitted = time.time()
    urgent = cluster.sbatch("#!/bin/bash\ntrue\n", "-p", "urgent", "-w", "n1", "--exclusive", "-J", "urgent",
                            "-o", "/dev/null")
    return ids, logs, submitted, urgent


def test_preemption_of_srun_steps(slurm_cluster, tmp_path):
    """Preemption with GraceTime, the work in an srun step (as a launcher runs it).

    Observed (SLURM 22.05.8, GraceTime=20): within 0.3–1.5 s of the urgent submit, SIGTERM goes
    to the job's *steps* only (not to the batch shell) and the grace period starts; the job
    stays RUNNING meanwhile. What SLURM then records depends on how the batch script ends:
    - the step exits 0 and the batch script with it: **COMPLETED 0:0**, never requeued
      (Restarts=0, one sacct row): a preempted job that saves and exits 0 is lost to the queue;
    - the step exits 143 and the batch script with it: **FAILED**, not requeued either;
      sacct's ExitCode shows ``15:0`` (SLURM reports an exit status above 128 as a signal).
    Either way the urgent job starts as soon as the node is free, without waiting out the grace.
    """
    ids, logs, submitted, urgent = _preempt(slurm_cluster, tmp_path, {
        "exit0": step_job(tmp_path, "exit0"), "exit143": step_job(tmp_path, "exit143")})
    try:
        assert slurm_cluster.wait_for(ids["exit0"], DONE, timeout=30) == "COMPLETED"
        assert slurm_cluster.wait_for(ids["exit143"], DONE, timeout=30) == "FAILED"
        assert slurm_cluster.wait_for(urgent, DONE, timeout=30) == "COMPLETED"
        for name in ids:
            term = events(logs[name], "step-TERM")
            assert len(term) == 1, records(logs[name])
            assert term[0]["t"] - submitted < 10, "the step's SIGTERM came late"
            assert term[0]["state"] == "RUNNING"  # a grace-period SIGTERM: the job is still RUNNING
            assert not events(logs[name], "batch-TERM"), "the batch shell got SIGTERM at grace start"
        print(f"preemption: step SIGTERM {events(logs['exit0'], 'step-TERM')[0]['t'] - submitted:.1f}s after the urgent submit")
        assert events(logs["exit0"], "batch-srun-rc=0")
        assert events(logs["exit143"], "batch-srun-rc=143")
        exit0 = sacct_runs(slurm_cluster, ids["exit0"], 1)
        assert [(r["State"], r["ExitCode"], r["Restarts"]) for r in exit0] == [("COMPLETED", "0:0", "0")]
        exit143 = sacct_runs(slurm_cluster, ids["exit143"], 1)
        assert [(r["State"], r["ExitCode"], r["Restarts"]) for r in exit143] == [("FAILED", "15:0", "0")]
    finally:
        slurm_cluster.cancel(*ids.values(), urgent)


def test_preemption_requeue_and_batch_shell(slurm_cluster, tmp_path):
    """Preemption, continued: a step that requeues its own job, and a batch script without steps.

    Observed (GraceTime=20):
    - a step that calls ``scontrol requeue $SLURM_JOB_ID`` on its grace-period SIGTERM gets
      rc 0; the job is requeued at once (sacct: **REQUEUED**, not PREEMPTED), its
      processes get SIGTERM again (the requeue's own kill), and it runs again after the
      urgent job (SLURM_RESTART_COUNT=1);
    - a batch script that runs its work itself (no srun step) gets **no SIGTERM at grace
      start**: its first signal is the SIGTERM of the requeue at the *end* of the grace
      period (measured 31.7 and 32.4 s after the urgent submit with GraceTime=20: the end
      is noticed on slurmctld's periodic pass), by then the job is already requeued
      (JobState in the trap: COMPLETING), SIGKILL follows after KillWait, and sacct records
      **PREEMPTED** whatever it exits with (0 here); it runs again after the urgent job
      (SLURM_RESTART_COUNT=1). Its batch script had no time to save anything: only an
      srun step hears the grace-period SIGTERM.
    """
    ids, logs, submitted, urgent = _preempt(slurm_cluster, tmp_path, {
        "requeue": step_job(tmp_path, "requeue"), "batchonly": (BATCH_ONLY_JOB, "batch-start")})
    grace = slurm_cluster.grace_s
    try:
        # the self-requeue: immediate
        rq = wait_until("step self-requeue", lambda: events(logs["requeue"], "step-requeue-rc=0"), timeout=20)
        assert rq[0]["t"] - submitted < 10
        assert events(logs["requeue"], "step-TERM")[0]["state"] == "RUNNING"
        # the batch-only job: nothing until the grace period is over
        term = wait_until("batch-only SIGTERM", lambda: events(logs["batchonly"], "batch-TERM"),
                          timeout=grace + 60)
        waited = term[0]["t"] - submitted
        print(f"preemption: batch-only job's first SIGTERM {waited:.1f}s after the urgent submit "
              f"(GraceTime {grace}), JobState in its trap {term[0]['state']}")
        assert grace - 1 <= waited <= grace + 35, f"batch shell SIGTERM {waited:.1f}s after the urgent submit"
        assert term[0]["state"] != "RUNNING"
        assert slurm_cluster.wait_for(urgent, DONE, timeout=30) == "COMPLETED"
        # both run again once the urgent job is done (cred_expire after their requeue)
        for name in ids:
            starts = wait_until(f"{name} restarted",
                                lambda n=name: len(events(logs[n], "batch-start")) >= 2 and events(logs[n], "batch-start"),
                                timeout=slurm_cluster.cred_expire_s + 40)
            assert [s["restart"] for s in starts[:2]] == ["0", "1"]
        assert [r["State"] for r in sacct_runs(slurm_cluster, ids["requeue"], 1)][0] == "REQUEUED"
        assert [r["State"] for r in sacct_runs(slurm_cluster, ids["batchonly"], 1)][0] == "PREEMPTED"
    finally:
        slurm_cluster.cancel(*ids.values(), urgent)


def test_blind_self_requeue_undoes_scancel(slurm_cluster, tmp_path):
    """``scancel`` SIGTERMs the batch shell (the job is already COMPLETING/CANCELLED when the
    trap runs); a trap that answers with ``scontrol requeue $SLURM_JOB_ID`` gets **rc 0**, and
    the cancelled job is requeued and runs again (SLURM_RESTART_COUNT=1); sacct records the
    cancelled run as REQUEUED, not CANCELLED. So a batch script must not requeue itself
    blindly on SIGTERM: the job state in its trap (RUNNING during a preemption grace period,
    not RUNNING after scancel or a time limit) is what tells them apart. (A plain
    ``scancel`` of such a job again brings it back; :meth:`SlurmCluster.cancel` SIGKILLs.)"""
    log = tmp_path / "events.log"
    body = """rec start
on_term() { rec TERM; out=$(scontrol requeue "$SLURM_JOB_ID" 2>&1); rec requeue-rc=$? "$out"; exit 0; }
trap on_term TERM
idle
"""
    job_id = slurm_cluster.sbatch(script(log, body), "-w", "n1", "-n1", "-o", "/dev/null")
    try:
        wait_until("start", lambda: events(log, "start"), timeout=60)
        slurm_cluster.run(["scancel", job_id])
        term = wait_until("TERM", lambda: events(log, "TERM"), timeout=15)
        print(f"scancel: JobState in the batch shell's SIGTERM trap {term[0]['state']}")
        assert term[0]["state"] in {"COMPLETING", "CANCELLED"}
        assert wait_until("requeue rc", lambda: [r for r in records(log) if r["event"].startswith("requeue-rc=")],
                          timeout=15)[0]["event"] == "requeue-rc=0"
        starts = wait_until("the cancelled job running again",
                            lambda: len(events(log, "start")) >= 2 and events(log, "start"),
                            timeout=slurm_cluster.cred_expire_s + 40)
        assert starts[1]["restart"] == "1"
        runs = [r for r in slurm_cluster.sacct(job_id) if r["JobID"] == job_id]
        assert runs[0]["State"] == "REQUEUED"
    finally:
        slurm_cluster.cancel(job_id)
    assert slurm_cluster.wait_for(job_id, DONE, timeout=30) == "CANCELLED"


def test_usr1_before_time_limit(slurm_cluster, time_limit_job):
    """``--time=1 --signal=B:USR1@30``: the batch shell gets USR1 **at least** 30 s before
    the limit but possibly much earlier (SLURM checks the warn time on a ~30 s tick and may
    send it up to 60 s early: observed 4.9 s and 28.7 s after the start of a one-minute job,
    i.e. 55 and 31 s before the limit). At the limit (observed 65, 80 and 88 s after the
    start: the limit is enforced on the same tick) the batch shell gets SIGTERM, with the job already COMPLETING
    in its trap, then SIGKILL after KillWait; sacct says TIMEOUT (0:0) for a job that
    just exits. A trap that calls ``scontrol requeue`` then gets rc 0 and the job is
    requeued (sacct: REQUEUED) and runs again, like the cancelled job above."""
    job_id, log, submitted = time_limit_job
    term = wait_until("the time limit's SIGTERM", lambda: events(log, "TERM"),
                      timeout=max(10.0, submitted + 130 - time.time()))
    start = events(log, "start")[0]
    usr1 = events(log, "USR1")
    assert len(usr1) == 1, records(log)
    print(f"time limit: USR1 {usr1[0]['t'] - start['t']:.1f}s after the start, SIGTERM "
          f"{term[0]['t'] - start['t']:.1f}s after it (JobState {term[0]['state']})")
    assert usr1[0]["t"] <= start["t"] + 60 - USR1_BEFORE_S + 1, "USR1 came later than limit - 30 s"
    assert usr1[0]["state"] == "RUNNING"
    assert 59 <= term[0]["t"] - start["t"] <= 100
    assert term[0]["state"] != "RUNNING"
    rc = wait_until("requeue rc", lambda: [r for r in records(log) if r["event"].startswith("requeue-rc=")], timeout=15)
    assert rc[0]["event"] == "requeue-rc=0"
    runs = sacct_runs(slurm_cluster, job_id, 1)
    assert runs[0]["State"] == "REQUEUED"
