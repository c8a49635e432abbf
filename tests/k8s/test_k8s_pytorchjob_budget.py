"""A PyTorchJob's restart budget, kept by its pods (``aegis.launch.restart_budget``).

The Training Operator v1.9.4 never bounds retries under ``restartPolicy: ExitCode``: it
recreates a pod whose ``pytorch`` container exited 128-255, or never ran because an init
container failed (``pkg/controller.v1/common/pod.go``: the placeholder exit code 0xbeef;
``pkg/util/train/train_util.go``: >= 128 is retryable), and its ``runPolicy.backoffLimit``
check (``pkg/controller.v1/common/job.go``, ``PastBackoffLimit``) counts container restarts of
running pods only, which ExitCode pods (restartPolicy Never) never have: kubeflow/trainer#2045.
A recreated pod keeps its name (``<job>-worker-1``) and gets a new uid; 1-127 fails the job.
``operator_loop`` below is that rule; the pods' own count is what ends it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from aegis.launch import gang, restart_budget
from k8s_helpers import IMAGE, ROOT, compose_cfg, context_for

POD = "train-abc-worker-1"
OOM = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]  # 137, as the OOM killer


def render(tmp_path, *overrides):
    from aegis.launch import get_launcher

    overrides = ("launcher=pytorchjob", f"launcher.image={IMAGE}", "strategy=ddp", *overrides)
    cfg = compose_cfg(*overrides)
    return get_launcher("pytorchjob").render(cfg, context_for(cfg, overrides, tmp_path / "run")).manifest


def env_of(container):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def pod_env(folder: Path, max_attempts: int, uid: str | None = None, pod: str = POD) -> dict[str, str]:
    return {restart_budget.ATTEMPTS_DIR_ENV: str(folder), restart_budget.MAX_ATTEMPTS_ENV: str(max_attempts),
            restart_budget.POD_NAME_ENV: pod, restart_budget.POD_UID_ENV: uid or str(uuid.uuid4())}


def set_env(monkeypatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def operator_loop(monkeypatch, folder: Path, max_attempts: int, command, limit: int = 12) -> list[int]:
    """Training Operator v1.9.4 under restartPolicy ExitCode, for one replica: recreate the pod
    (same name, new uid) while its pytorch container exits >= 128; stop on 0 or 1-127. The exit
    codes of every attempt, at most ``limit`` (the operator itself has none)."""
    codes: list[int] = []
    while len(codes) < limit:
        set_env(monkeypatch, pod_env(folder, max_attempts))
        code = gang.main(list(command))  # the pod's command: python -m aegis.launch.gang ...
        codes.append(code)
        if code < 128:
            break
    return codes


# ------------------------------------------------------------------ the rendered PyTorchJob


def test_every_pod_gets_its_budget_and_backoff_limit_is_max_restarts(tmp_path):
    manifest = render(tmp_path, "launcher.nodes=3", "launcher.max_restarts=5")
    assert manifest["spec"]["runPolicy"]["backoffLimit"] == 5  # for an operator that enforces it
    folders = set()
    for replica in ("Master", "Worker"):
        env = env_of(manifest["spec"]["pytorchReplicaSpecs"][replica]["template"]["spec"]["containers"][0])
        assert env[restart_budget.MAX_ATTEMPTS_ENV] == "6"
        assert env[restart_budget.POD_NAME_ENV] == {"fieldRef": {"fieldPath": "metadata.name"}}
        assert env[restart_budget.POD_UID_ENV] == {"fieldRef": {"fieldPath": "metadata.uid"}}
        folders.add(env[restart_budget.ATTEMPTS_DIR_ENV])
    (folder,) = folders  # one folder for the whole gang, in the run dir on the outputs volume
    name = manifest["metadata"]["name"]
    assert folder.startswith(f"/outputs/train/runs/") and f"/pod-attempts/{name}-" in folder
    again = render(tmp_path, "launcher.nodes=3", "launcher.max_restarts=5")
    env = env_of(again["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0])
    assert env[restart_budget.ATTEMPTS_DIR_ENV] != folder  # a resubmission starts a new budget


def test_prefetch_init_container_counts_the_attempt_first(tmp_path):
    manifest = render(tmp_path, "launcher.nodes=2", "launcher.prefetch_data=true", "data=image_folder",
                      "data.source=s3://bucket/digits.tar", "model=cnn")
    for replica in ("Master", "Worker"):
        spec = manifest["spec"]["pytorchReplicaSpecs"][replica]["template"]["spec"]
        (init,) = spec["initContainers"]
        assert init["args"][:5] == ["python", "-m", "aegis.launch.restart_budget", "--", "python"]
        assert init["args"][5:7] == ["-m", "aegis.data"]
        assert env_of(init)[restart_budget.ATTEMPTS_DIR_ENV] == env_of(spec["containers"][0])[
            restart_budget.ATTEMPTS_DIR_ENV]


def test_backoff_limit_is_refused_in_one_sentence_naming_max_restarts(tmp_path):
    from k8s_helpers import run_train

    result = run_train("strategy=ddp", "launcher=pytorchjob", f"launcher.image={IMAGE}", "launcher.dry_run=true",
                       "launcher.backoff_limit=5", cwd=tmp_path)
    assert result.returncode == 1
    assert "Error: launcher.backoff_limit=5 would not bound a PyTorchJob's retries" in result.stderr
    assert "launcher.max_restarts=5" in result.stderr
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("*.yaml"))


# ------------------------------------------------------------------ the pods' count


def test_oom_killed_pod_stops_after_max_restarts_plus_one_attempts(tmp_path, monkeypatch, capsys):
    """Exit 137 on every attempt: recreated forever by the operator alone; here three attempts
    (launcher.max_restarts=2), then the fourth pod exits 3 with one sentence, which fails the job."""
    folder = tmp_path / "pod-attempts" / "train-abc-1a2b3c"
    codes = operator_loop(monkeypatch, folder, max_attempts=3, command=OOM)
    assert codes == [137, 137, 137, restart_budget.SPENT_EXIT_CODE]
    err = capsys.readouterr().err
    assert (f"Error: The restart budget of this PyTorchJob is spent: pod {POD} was started 4 times "
            f"(attempts counted in {folder}), and launcher.max_restarts=2 allows 3") in err
    assert len(list(folder.glob(f"{POD}.*.json"))) == 4


def test_a_gang_restart_counts_once_per_pod_not_per_rank_or_replica(tmp_path, monkeypatch):
    folder = tmp_path / "attempts"
    for n in range(3):  # three gang attempts: every replica recreated once each time
        for pod in ("job-master-0", "job-worker-0", "job-worker-1", "job-worker-10"):
            attempt = restart_budget.begin(pod_env(folder, 3, pod=pod))
            assert attempt is not None and attempt.number == n + 1 and not attempt.spent
    attempt = restart_budget.begin(pod_env(folder, 3, pod="job-worker-1"))
    assert attempt.number == 4 and attempt.spent


def test_an_attempt_the_pod_was_told_to_stop_is_not_counted(tmp_path):
    """SIGTERM to the pod (a deletion, eviction, preemption, Kueue suspension) spends nothing,
    as the Job controller's DisruptionTarget rule; a kill without one (137) does."""
    folder = tmp_path / "attempts"
    first = restart_budget.begin(pod_env(folder, 1))
    first.end(143, stopped=True)
    second = restart_budget.begin(pod_env(folder, 1))
    assert second.number == 1 and not second.spent
    second.end(137, stopped=False)
    assert restart_budget.begin(pod_env(folder, 1)).spent


def test_same_pod_counted_once_and_no_budget_outside_a_pytorchjob(tmp_path, monkeypatch):
    folder = tmp_path / "attempts"
    env = pod_env(folder, 2, uid="u-1")
    assert restart_budget.begin(env).number == 1  # the init container
    assert restart_budget.begin(env).number == 1  # the training container of the same pod
    assert restart_budget.begin({}) is None  # a local run, a Job, a TrainJob: nothing rendered
    for key in list(env):
        monkeypatch.delenv(key, raising=False)
    assert gang.main([sys.executable, "-c", "pass"]) == 0


def test_unwritable_folder_never_stops_the_run(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert restart_budget.begin(pod_env(blocker / "attempts", 1)) is None
    assert "launcher.max_restarts is not enforced" in capsys.readouterr().err


def test_failing_prefetch_init_container_stops_after_the_budget(tmp_path):
    """The init container fails (no pytorch exit code: retryable for the operator) on every
    attempt; once the budget is spent it steps aside (exit 0) and the training container of
    that same pod exits 3, which ends the PyTorchJob."""
    folder, ran = tmp_path / "attempts", tmp_path / "ran"
    fetch = [sys.executable, "-c", f"open({str(ran)!r}, 'a').write('x'); raise SystemExit(1)"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    codes = []
    for _ in range(6):
        pod = pod_env(folder, 2)
        init = subprocess.run([sys.executable, "-m", "aegis.launch.restart_budget", "--", *fetch],
                              env={**env, **pod}, capture_output=True, text=True, timeout=60)
        codes.append(init.returncode)
        if init.returncode == 0:
            training = subprocess.run([sys.executable, "-m", "aegis.launch.gang", sys.executable, "-c", "pass"],
                                      env={**env, **pod}, capture_output=True, text=True, timeout=60)
            assert training.returncode == restart_budget.SPENT_EXIT_CODE
            assert "launcher.max_restarts=1 allows 2" in training.stderr
            break
    assert codes == [1, 1, 0]
    assert ran.read_text() == "xx"  # the third attempt did not fetch


def test_budget_check_imports_no_torch(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **pod_env(tmp_path / "a", 1)}
    code = ("import sys; from aegis.launch import gang, restart_budget; restart_budget.begin(); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)


@pytest.mark.parametrize("max_restarts", [0, 3])
def test_max_restarts_key_is_validated(tmp_path, max_restarts):
    manifest = render(tmp_path, f"launcher.max_restarts={max_restarts}")
    env = env_of(manifest["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0])
    assert env[restart_budget.MAX_ATTEMPTS_ENV] == str(max_restarts + 1)
