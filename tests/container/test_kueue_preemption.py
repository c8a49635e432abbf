"""Kueue preempting a queued TrainJob, for real pods: the resume half of the lifecycle that the
fake API server tests follow (tests/k8s/test_k8s_kueue.py).

What Kueue does when it preempts a workload: it suspends the TrainJob; Trainer suspends the
JobSet, whose Jobs delete their pods (the kubelet's stop: SIGTERM, SIGKILL at the end of the
grace period); later Kueue admits it again and the same TrainJob gets new pods, given the same
trainer command and the torch plugin's PET_* variables. Here the node pods are two containers
of the built image on the host network (node 0's address is loopback), stopped together as the
JobSet's suspension stops them and started again as its readmission does. The run must end up
one run: the same run dir and tracking run, resumed at the step it was stopped at.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

import container_helpers as ctr
from test_container import _free_port, outputs_dir, render, the_summary, volumes
from test_preemption import _grace, _run_dir, _stop_together, _wait_for

pytestmark = pytest.mark.container

NODES = 2


def _start_nodes(pod: dict, trainer: dict, tmp_path: Path, outputs: Path) -> dict[int, str]:
    port = _free_port()
    names = {}
    for rank in range(NODES):
        injected = {"PET_NNODES": str(trainer["numNodes"]), "PET_NPROC_PER_NODE": str(trainer["numProcPerNode"]),
                    "PET_NODE_RANK": str(rank), "PET_MASTER_ADDR": "127.0.0.1", "PET_MASTER_PORT": str(port)}
        names[rank] = f"aegis-kueue-node-{rank}-{uuid.uuid4().hex[:8]}"
        ctr.start(ctr.run_args(pod, name=names[rank], volumes=volumes(tmp_path, outputs), env=injected))
    return names


def _logs(names: dict[int, str]) -> str:
    return "".join(ctr.logs(name)[-2500:] for name in names.values())


def test_a_trainjob_preempted_by_kueue_resumes_in_the_same_run_when_readmitted(image, tmp_path):
    import torch

    manifest = render(tmp_path, f"launcher.image={image}", "strategy=ddp", "launcher=trainjob",
                      f"launcher.nodes={NODES}", "launcher.nproc_per_node=1", "launcher.queue=team-a",
                      "launcher.priority_class=low", "data=synthetic", "data.num_samples=40000",
                      "trainer.max_epochs=3", "logger=mlflow", "logger.register_model=false", "test_after_fit=false")
    labels = manifest["metadata"]["labels"]
    assert labels["kueue.x-k8s.io/queue-name"] == "team-a" and "suspend" not in manifest["spec"]
    trainer = manifest["spec"]["trainer"]
    pod = ctr.pod_specs(manifest)["node"]
    grace = _grace(pod)
    outputs = outputs_dir(tmp_path)
    run_dir = _run_dir(outputs, manifest)

    names = _start_nodes(pod, trainer, tmp_path, outputs)  # admitted: the JobSet's pods start
    try:
        _wait_for(names[0], "epoch 1/3")
        # Preempted: the JobSet is suspended and every pod is deleted at once.
        stopped = _stop_together(names, grace)
        log = _logs(names)
    finally:
        for name in names.values():
            ctr.remove(name)
    # Retryable, and within the grace period: nothing was SIGKILLed mid-write.
    assert {rank: code for rank, (code, _) in stopped.items()} == {0: 143, 1: 143}, log
    assert all(took < grace for _, took in stopped.values()), stopped
    preempted = the_summary(outputs)
    assert preempted["status"] == "preempted", log
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
    assert saved == preempted["global_step"] and saved > 0
    tracking_run = json.loads((run_dir / "tracking.json").read_text())["run_id"]

    names = _start_nodes(pod, trainer, tmp_path, outputs)  # readmitted: the same TrainJob, new pods
    try:
        codes = {rank: ctr.wait(name) for rank, name in names.items()}
        log = _logs(names)
    finally:
        for name in names.values():
            ctr.remove(name)
    assert codes == {0: 0, 1: 0}, log
    record = the_summary(outputs)
    assert record["status"] == "completed" and record["world_size"] == NODES
    assert record["timing"]["train_steps"] == record["global_step"] - saved  # resumed where it stopped
    assert [a["status"] for a in record["attempts"]] == ["preempted", "completed"]
    assert [p.name for p in (outputs / "train" / "runs").iterdir()] == [run_dir.name]  # one run dir
    assert json.loads((run_dir / "tracking.json").read_text())["run_id"] == tracking_run  # one tracking run
