"""Which rank a PyTorchJob pod is, as a failure report names it.

Training Operator v1.9.4 (``pkg/controller.v1/pytorch/envvar.go``): with a Master, every pod gets
PET_NODE_RANK = its replica index (+1 for a Worker), and torchrun's static rendezvous uses it.
With an elasticPolicy (``elastic.go``) the pods get PET_RDZV_ENDPOINT=<job>-worker-0 and
PET_NNODES=min:max, and torchrun's c10d rendezvous ignores PET_NODE_RANK: it numbers the nodes
of each round in the sorted order of their host names (torch 2.x
``torch/distributed/elastic/rendezvous/dynamic_rendezvous.py``, ``enumerate(sorted(state.
participants))``, a participant being (fqdn, pid, local id)). ``rendezvous_ranks`` is that rule.
"""

from __future__ import annotations

import copy

from aegis.k8s import triage
from aegis.launch.pytorchjob.kind import PYTORCHJOB
from test_k8s_render import render


def rendezvous_ranks(hosts):
    """c10d's node ranks for the hosts that joined a round."""
    return {host: rank for rank, host in enumerate(sorted(hosts))}


def operator_pod(manifest, replica, index):
    """The pod the operator creates from a replica's template: its labels (replica type and
    index, ``pkg/controller.v1/common/pod.go``) and PET_NPROC_PER_NODE (one process per pod)."""
    template = copy.deepcopy(manifest["spec"]["pytorchReplicaSpecs"][replica]["template"])
    name = manifest["metadata"]["name"]
    template["metadata"]["name"] = f"{name}-{replica.lower()}-{index}"
    template["metadata"]["labels"].update({"training.kubeflow.org/job-name": name,
                                           "training.kubeflow.org/replica-type": replica.lower(),
                                           "training.kubeflow.org/replica-index": str(index)})
    template["spec"]["containers"][0]["env"].append({"name": "PET_NPROC_PER_NODE", "value": "1"})
    return template


def test_static_pytorchjob_pods_name_their_rank(tmp_path):
    manifest = render("pytorchjob", tmp_path, "launcher.nodes=3").manifest
    assert triage.rank(PYTORCHJOB, operator_pod(manifest, "Master", 0)) == 0
    assert triage.rank(PYTORCHJOB, operator_pod(manifest, "Worker", 1)) == 2  # PET_NODE_RANK, as torchrun uses it


def test_elastic_pytorchjob_pods_name_no_rank_the_rendezvous_did_not_give(tmp_path):
    """Labels say worker-1 is node 2; the rendezvous says otherwise as soon as the Master is out
    of a round, or there are ten Workers or more. A failure then names the pod, not a rank."""
    nodes = 12
    manifest = render("pytorchjob", tmp_path, f"launcher.nodes={nodes}", "launcher.elastic.enabled=true",
                      "launcher.elastic.min_nodes=2").manifest
    job = manifest["metadata"]["name"]
    workers = [f"{job}-worker-{i}" for i in range(nodes - 1)]
    without_master = rendezvous_ranks(workers)
    assert without_master[f"{job}-worker-1"] == 1  # not 2, as the labels would say
    assert rendezvous_ranks([f"{job}-master-0", *workers])[f"{job}-worker-10"] == 3  # not 11
    for replica, index in (("Master", 0), ("Worker", 1), ("Worker", 10)):
        assert triage.rank(PYTORCHJOB, operator_pod(manifest, replica, index)) is None
