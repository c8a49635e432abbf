"""The pod side, for real: the built image runs each rendered pod's exact command.

`pytest -m container` (CI runs it): builds the image, then takes the pod specs from
`--dry-run` manifests and runs them in containers with the host folder standing in for
the outputs volume.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import container_helpers as ctr

pytestmark = pytest.mark.container

TRAIN = ctr.REPO / "train.py"


def render(tmp_path: Path, *overrides: str) -> dict:
    """`train.py <overrides> launcher.dry_run=true` on the host; the manifest it wrote.
    The overrides name the image: launcher.image=<the reference docker/build.sh tagged>."""
    root = tmp_path / "render"
    env = {**os.environ, "AEGIS_OUTPUT_ROOT": str(root)}
    result = subprocess.run([sys.executable, str(TRAIN), *overrides, "launcher.dry_run=true"],
                            cwd=ctr.REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    [path] = [p for p in root.rglob("*.yaml") if p.name in ("job.yaml", "pytorchjob.yaml", "trainjob.yaml")]
    return ctr.load_manifest(path)


def outputs_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "outputs-volume"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)  # the pod runs as a non-root user, as on a cluster
    return folder


def volumes(tmp_path: Path, outputs: Path) -> dict[str, Path]:
    cache = tmp_path / "dataset-cache"
    cache.mkdir(mode=0o777, exist_ok=True)
    cache.chmod(0o777)
    return {"outputs": outputs, "dataset-cache": cache}


def the_summary(outputs: Path) -> dict:
    [path] = list(outputs.rglob("summary.json"))
    return json.loads(path.read_text())


def test_the_image_runs_as_a_non_root_user(image):
    result = subprocess.run([*ctr.PODMAN, "run", "--rm", *ctr.ULIMITS, image, "id", "-u"],
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "1000"


def test_job_pod_trains_and_writes_to_the_outputs_volume(image, tmp_path):
    manifest = render(tmp_path, f"launcher.image={image}", "launcher=k8s-job", "trainer=smoke", "logger=csv")
    pod = ctr.pod_specs(manifest)["job"]
    assert pod["containers"][0]["image"] == image
    outputs = outputs_dir(tmp_path)
    name = f"aegis-job-{uuid.uuid4().hex[:8]}"
    try:
        ctr.start(ctr.run_args(pod, name=name, volumes=volumes(tmp_path, outputs)))
        code = ctr.wait(name)
        log = ctr.logs(name)
    finally:
        ctr.remove(name)
    assert code == 0, log[-3000:]
    assert "epoch 1/2" in log and "epoch 2/2" in log
    record = the_summary(outputs)
    assert record["status"] == "completed" and record["world_size"] == 1
    run_id = manifest["metadata"]["labels"]["aegis.dev/run-id"]
    run_dir = outputs / "train" / "runs" / run_id  # the pinned run dir, on the volume
    assert record["run_dir"] == f"/outputs/train/runs/{run_id}"
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert not (run_dir / "job.json").exists()  # the job is the cluster's object, not the pod's process


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_pytorchjob_master_and_worker_join_one_ddp_group(image, tmp_path):
    manifest = render(tmp_path, f"launcher.image={image}", "strategy=ddp", "launcher=pytorchjob", "launcher.nodes=2",
                      "trainer=smoke", "logger=csv")
    specs = ctr.pod_specs(manifest)
    assert manifest["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 1
    nproc = manifest["spec"]["nprocPerNode"]
    outputs = outputs_dir(tmp_path)
    port = _free_port()
    names = {}
    try:
        for rank, role in enumerate(("master", "worker")):
            # What the Training Operator injects into each pod (v1): PET_* for torchrun,
            # and pod-level MASTER_ADDR/PORT, WORLD_SIZE, RANK. Host network: the master's
            # service name becomes loopback.
            env = {"PET_NNODES": "2", "PET_NPROC_PER_NODE": nproc, "PET_NODE_RANK": str(rank),
                   "PET_MASTER_ADDR": "127.0.0.1", "PET_MASTER_PORT": str(port),
                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2", "RANK": str(rank)}
            names[role] = f"aegis-{role}-{uuid.uuid4().hex[:8]}"
            ctr.start(ctr.run_args(specs[role], name=names[role], volumes=volumes(tmp_path, outputs), env=env))
        codes = {role: ctr.wait(name) for role, name in names.items()}
        master_log = ctr.logs(names["master"])
        worker_log = ctr.logs(names["worker"])
    finally:
        for name in names.values():
            ctr.remove(name)
    assert codes == {"master": 0, "worker": 0}, master_log[-2000:] + worker_log[-2000:]
    record = the_summary(outputs)
    assert record["world_size"] == 2 and record["num_nodes"] == 2
    run_id = manifest["metadata"]["labels"]["aegis.dev/run-id"]
    run_dir = outputs / "train" / "runs" / run_id
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "train.log").is_file() and (run_dir / "train.rank1.log").is_file()
    assert "epoch 2/2" in master_log  # rank 0 reports; the worker trains silently
    assert "epoch 2/2" not in worker_log


def test_a_preempted_job_pod_resumes_from_its_checkpoint(image, tmp_path):
    manifest = render(tmp_path, f"launcher.image={image}", "launcher=k8s-job", "data=synthetic",
                      "data.num_samples=60000", "trainer.max_epochs=3", "logger=csv")
    pod = ctr.pod_specs(manifest)["job"]
    outputs = outputs_dir(tmp_path)
    mounts = volumes(tmp_path, outputs)
    first, second = (f"aegis-preempt-{uuid.uuid4().hex[:8]}" for _ in range(2))
    try:
        ctr.start(ctr.run_args(pod, name=first, volumes=mounts))
        deadline = time.time() + 300
        while "epoch 1/3" not in ctr.logs(first):
            assert time.time() < deadline, ctr.logs(first)[-3000:]
            time.sleep(0.5)
        time.sleep(0.5)  # into the second epoch
        # What the kubelet does on preemption: SIGTERM, then SIGKILL after the grace period.
        subprocess.run([*ctr.PODMAN, "stop", "--time", "60", first], check=True, capture_output=True)
        assert ctr.wait(first) == 143, ctr.logs(first)[-3000:]
        preempted = the_summary(outputs)
        assert preempted["status"] == "preempted" and preempted["global_step"] > 375

        ctr.start(ctr.run_args(pod, name=second, volumes=mounts))  # the rescheduled pod
        code = ctr.wait(second)
        log = ctr.logs(second)
    finally:
        ctr.remove(first)
        ctr.remove(second)
    assert code == 0, log[-3000:]
    resumed = the_summary(outputs)
    assert resumed["status"] == "completed"
    assert resumed["resumed_from"].endswith("/checkpoints/last.ckpt")
    assert resumed["global_step"] == 3 * 375  # 60000 x 0.8 / 128 steps per epoch
    assert resumed["timing"]["train_steps"] == 3 * 375 - preempted["global_step"]  # not from epoch 0
