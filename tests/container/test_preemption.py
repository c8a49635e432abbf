"""Preemption of real pods, as the kubelet does it: SIGTERM to the container, SIGKILL at the
end of the grace period (`podman stop --time`), at every phase of a run; and a PyTorchJob
whose worker alone, then both pods, are preempted.

The containers run the rendered pods' exact args in the built image, whose ENTRYPOINT
(tini) is PID 1, with a host folder standing in for the outputs volume.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

import container_helpers as ctr
from test_container import _free_port, outputs_dir, render, the_summary, volumes

pytestmark = pytest.mark.container


def _grace(pod: dict) -> int:
    return int(pod["terminationGracePeriodSeconds"])


def _wait_for(name: str, needle: str, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while needle not in ctr.logs(name):
        assert time.time() < deadline, ctr.logs(name)[-3000:]
        time.sleep(0.2)


def _stop(name: str, grace: int) -> tuple[int, float]:
    """The kubelet's stop: SIGTERM, SIGKILL after ``grace`` s. (exit code, seconds taken)"""
    started = time.monotonic()
    subprocess.run([*ctr.PODMAN, "stop", "--time", str(grace), name], check=True, capture_output=True)
    return ctr.wait(name), time.monotonic() - started


def _stop_together(names: dict, grace: int) -> dict:
    """Every container in ``names`` stopped at once, as a controller deleting its pods does:
    {key: (exit code, seconds taken)}."""
    results: dict = {}
    stoppers = [threading.Thread(target=lambda k=key: results.__setitem__(k, _stop(names[k], grace)))
                for key in names]
    for stopper in stoppers:
        stopper.start()
    for stopper in stoppers:
        stopper.join()
    return results


def _run_dir(outputs: Path, manifest: dict) -> Path:
    return outputs / "train" / "runs" / manifest["metadata"]["labels"]["aegis.dev/run-id"]


def _no_temp_files(run_dir: Path) -> list[Path]:
    return [p for p in run_dir.rglob("*") if ".tmp" in p.name]


def test_pid_1_of_a_rendered_pod_is_the_init(image, tmp_path):
    # long enough epochs that the run is still going when PID 1 is looked at
    manifest = render(tmp_path, "launcher=k8s-job", f"launcher.image={image}", "data=synthetic",
                      "data.num_samples=60000", "trainer.max_epochs=3", "logger=csv")
    pod = ctr.pod_specs(manifest)["job"]
    container = pod["containers"][0]
    assert "command" not in container, "a command would replace the image's init"
    name = f"aegis-pid1-{uuid.uuid4().hex[:8]}"
    try:
        ctr.start(ctr.run_args(pod, name=name, volumes=volumes(tmp_path, outputs_dir(tmp_path))))
        _wait_for(name, "epoch 1/3")
        top = subprocess.run([*ctr.PODMAN, "exec", name, "cat", "/proc/1/comm"], capture_output=True, text=True)
    finally:
        ctr.remove(name)
    assert top.returncode == 0, top.stderr
    assert top.stdout.strip() == "tini"


@pytest.mark.parametrize("moment", ["start-up", "test"])
def test_sigterm_to_a_job_pod_outside_fit_exits_143_within_the_grace_period(image, tmp_path, moment):
    # batches of 1 and a short fit: the test phase (12,000 batches) lasts long enough to stop in
    manifest = render(tmp_path, "launcher=k8s-job", f"launcher.image={image}", "data=synthetic",
                      "data.num_samples=60000", "data.batch_size=1", "trainer.max_epochs=1",
                      "trainer.limit_train_batches=20", "trainer.limit_val_batches=5", "logger=csv")
    pod = ctr.pod_specs(manifest)["job"]
    outputs = outputs_dir(tmp_path)
    name = f"aegis-term-{uuid.uuid4().hex[:8]}"
    try:
        ctr.start(ctr.run_args(pod, name=name, volumes=volumes(tmp_path, outputs)))
        if moment == "start-up":
            time.sleep(1)  # python is importing: no handler of Aegis's yet
        else:
            _wait_for(name, "Loaded model weights")  # fit is over; the test has begun
        code, took = _stop(name, _grace(pod))
        log = ctr.logs(name)
    finally:
        ctr.remove(name)
    assert code == 143, log[-3000:]
    assert took < _grace(pod)
    run_dir = _run_dir(outputs, manifest)
    assert _no_temp_files(run_dir) == [] if run_dir.exists() else True
    if moment == "test":
        record = the_summary(outputs)
        assert record["status"] == "preempted" and record["cause"].startswith("SIGTERM during")
        assert (run_dir / "checkpoints" / "last.ckpt").is_file()


def _pytorchjob(image: str, tmp_path: Path) -> tuple[dict, dict]:
    manifest = render(tmp_path, "strategy=ddp", "launcher=pytorchjob", f"launcher.image={image}",
                      "launcher.nodes=2", "launcher.nproc_per_node=1", "data=synthetic",
                      "data.num_samples=80000", "trainer.max_epochs=3", "logger=mlflow",
                      "logger.register_model=false", "test_after_fit=false")
    return manifest, ctr.pod_specs(manifest)


def _start_gang(specs: dict, tmp_path: Path, outputs: Path, port: int, *, nproc_per_node: int = 1) -> dict[str, str]:
    names = {}
    for rank, role in enumerate(("master", "worker")):
        # What the Training Operator injects (v1: WORLD_SIZE is replicas x nprocPerNode, RANK the
        # pod's node rank); host network: the master's service is loopback.
        env = {"PET_NNODES": "2", "PET_NPROC_PER_NODE": str(nproc_per_node), "PET_NODE_RANK": str(rank),
               "PET_MASTER_ADDR": "127.0.0.1", "PET_MASTER_PORT": str(port),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(2 * nproc_per_node),
               "RANK": str(rank)}
        names[role] = f"aegis-{role}-{uuid.uuid4().hex[:8]}"
        ctr.start(ctr.run_args(specs[role], name=names[role], volumes=volumes(tmp_path, outputs), env=env))
    return names


@pytest.mark.parametrize("preempted", [("worker",), ("master", "worker")], ids=["worker-only", "both"])
def test_a_preempted_pytorchjob_checkpoints_every_rank_at_one_step_and_resumes(image, tmp_path, preempted):
    import torch

    manifest, specs = _pytorchjob(image, tmp_path)
    grace = _grace(specs["master"])
    outputs = outputs_dir(tmp_path)
    run_dir = _run_dir(outputs, manifest)
    names = _start_gang(specs, tmp_path, outputs, _free_port())
    try:
        _wait_for(names["master"], "epoch 1/3")
        time.sleep(1.0)  # into the second epoch
        results = _stop_together({role: names[role] for role in preempted}, grace)
        codes = {role: results[role][0] if role in results else ctr.wait(names[role]) for role in names}
        log = ctr.logs(names["master"])[-2500:] + ctr.logs(names["worker"])[-2500:]
    finally:
        for name in names.values():
            ctr.remove(name)
    # Both retryable under restartPolicy ExitCode (128-255), the pod whose peer was signalled too.
    assert codes == {"master": 143, "worker": 143}, log
    assert all(took < grace for _, took in results.values())
    preempted_record = the_summary(outputs)
    assert preempted_record["status"] == "preempted", log
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
    assert saved == preempted_record["global_step"]
    # Past epoch 1 and mid-epoch: 250 steps per epoch per rank, so the second ~1 s after epoch 1's
    # line is well inside epoch 2 (with 125, the faster step path reached epoch 2's end: 250).
    assert saved > 250 and saved % 250 != 0
    tracking_run = json.loads((run_dir / "tracking.json").read_text())["run_id"]

    names = _start_gang(specs, tmp_path, outputs, _free_port())  # the operator restarts the pods
    try:
        codes = {role: ctr.wait(name) for role, name in names.items()}
        log = ctr.logs(names["master"])[-2500:] + ctr.logs(names["worker"])[-2500:]
    finally:
        for name in names.values():
            ctr.remove(name)
    assert codes == {"master": 0, "worker": 0}, log
    record = the_summary(outputs)
    assert record["status"] == "completed" and record["world_size"] == 2
    assert record["timing"]["train_steps"] == record["global_step"] - saved  # resumed at that step
    assert [p.name for p in (outputs / "train" / "runs").iterdir()] == [run_dir.name]  # one run dir
    assert json.loads((run_dir / "tracking.json").read_text())["run_id"] == tracking_run  # one tracking run
