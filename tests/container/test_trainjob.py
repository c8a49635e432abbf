"""A TrainJob's node pods, for real: the torch plugin emulated.

Kubeflow Trainer's torch plugin gives each node pod only PET_NNODES, PET_NPROC_PER_NODE,
PET_NODE_RANK, PET_MASTER_ADDR (node 0's headless-service name) and PET_MASTER_PORT; the
rest is the rendered TrainJob's trainer (image, args, env) and runtime patch (mounts, user,
capabilities). Two containers of the built image on the host network, node 0's address
being loopback, must train as one DDP group into one run dir.
"""

from __future__ import annotations

import uuid

import pytest

import container_helpers as ctr
from test_container import _free_port, outputs_dir, render, the_summary, volumes

pytestmark = pytest.mark.container


def test_trainjob_nodes_given_only_what_trainer_injects_join_one_ddp_group(image, tmp_path):
    manifest = render(tmp_path, f"launcher.image={image}", "strategy=ddp", "launcher=trainjob", "launcher.nodes=2",
                      "launcher.nproc_per_node=1", "trainer=smoke", "logger=csv")
    trainer = manifest["spec"]["trainer"]
    assert manifest["kind"] == "TrainJob" and trainer["numNodes"] == 2
    assert not {e["name"] for e in trainer["env"]} & {"PET_NNODES", "PET_NODE_RANK", "PET_MASTER_ADDR"}
    pod = ctr.pod_specs(manifest)["node"]
    assert pod["containers"][0]["image"] == image and "command" not in pod["containers"][0]
    outputs = outputs_dir(tmp_path)
    port = _free_port()
    names = {}
    try:
        for rank in range(2):
            injected = {"PET_NNODES": str(trainer["numNodes"]), "PET_NPROC_PER_NODE": str(trainer["numProcPerNode"]),
                        "PET_NODE_RANK": str(rank), "PET_MASTER_ADDR": "127.0.0.1", "PET_MASTER_PORT": str(port)}
            names[rank] = f"aegis-tj-node-{rank}-{uuid.uuid4().hex[:8]}"
            ctr.start(ctr.run_args(pod, name=names[rank], volumes=volumes(tmp_path, outputs), env=injected))
        codes = {rank: ctr.wait(name) for rank, name in names.items()}
        node_logs = {rank: ctr.logs(name) for rank, name in names.items()}
    finally:
        for name in names.values():
            ctr.remove(name)
    assert codes == {0: 0, 1: 0}, node_logs[0][-2000:] + node_logs[1][-2000:]
    run_id = manifest["metadata"]["labels"]["aegis.dev/run-id"]
    [run_dir] = list((outputs / "train" / "runs").iterdir())  # one run dir for both nodes
    assert run_dir.name == run_id
    record = the_summary(outputs)
    assert record["status"] == "completed" and record["world_size"] == 2 and record["num_nodes"] == 2
    assert record["run_dir"] == f"/outputs/train/runs/{run_id}"
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "train.log").is_file() and (run_dir / "train.rank1.log").is_file()
    assert "epoch 2/2" in node_logs[0] and "epoch 2/2" not in node_logs[1]  # rank 0 reports
