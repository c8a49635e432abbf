"""The failure triage of a torchrun gang in real pods: a rendered PyTorchJob's master and
worker (two ranks each, world size 4) run in the built image, and rank 3, on the worker,
raises at step 5 (``fault=raise``).

The pods get the ``PET_*`` env the Training Operator injects (``test_preemption._start_gang``)
and share a host folder as the outputs volume. What is proven is what ``aegis.launch.gang``
documents: the worker's pod, whose rank failed on its own account, exits 1 and says which
rank and why in one paragraph; the master's, whose ranks only lost a peer, exits 143
(retryable); the run's ``summary.json`` records the failure of rank 3; and the pods'
statuses, read as the API server would report them, lead ``aegis.k8s.triage`` to the
worker's pod and, through its log, to rank 3.
"""

from __future__ import annotations

import pytest

import container_helpers as ctr
from test_container import _free_port, outputs_dir, render, the_summary
from test_preemption import _start_gang

pytestmark = pytest.mark.container


def test_a_rank_that_raises_in_the_worker_pod_fails_the_pytorchjob_and_is_named(image, tmp_path):
    from aegis.k8s.triage import diagnose, own_report
    from aegis.launch.pytorchjob.kind import PYTORCHJOB

    manifest = render(tmp_path, "strategy=ddp", "launcher=pytorchjob", f"launcher.image={image}",
                      "launcher.nodes=2", "launcher.nproc_per_node=2", "trainer=smoke", "logger=csv",
                      "data=synthetic", "data.num_samples=4000", "test_after_fit=false",
                      "fault=raise", "fault.rank=3", "fault.step=5")
    assert manifest["spec"]["nprocPerNode"] == "2"
    specs = ctr.pod_specs(manifest)
    outputs = outputs_dir(tmp_path)
    names = _start_gang(specs, tmp_path, outputs, _free_port(), nproc_per_node=2)
    try:
        codes = {role: ctr.wait(name, timeout=300) for role, name in names.items()}
        logs = {role: ctr.logs(name) for role, name in names.items()}
        statuses = [ctr.pod_status(specs[role], name) for role, name in names.items()]
    finally:
        for name in names.values():
            ctr.remove(name)
    both = logs["master"][-3000:] + "\n----- worker -----\n" + logs["worker"][-3000:]
    assert codes == {"master": 143, "worker": 1}, both

    worker_lines = logs["worker"].splitlines()
    [report] = [line for line in worker_lines if line.startswith("Run failed:")]
    # (torchrun SIGTERMs rank 3 as rank 2's lost peer ends first: a consequence, never in its cause)
    assert report == "Run failed: rank 3: InjectedFault: injected fault (fault=raise). (exit code 1)", both
    assert not [line for line in logs["master"].splitlines() if line.startswith(("Run failed:", "Restart "))], both

    record = the_summary(outputs)
    assert record["status"] == "failed", record
    failure = record["failure"]
    assert (failure["rank"], failure["exception"], failure["message"]) == (
        3, "InjectedFault", "injected fault (fault=raise)"), failure
    assert record["error"] == "InjectedFault: injected fault (fault=raise)" and "retryable" not in record, record
    [attempt] = record["attempts"]
    assert "restarts" not in record and not attempt.get("restarted"), record
    assert attempt["status"] == "failed" and attempt["failure"]["rank"] == 3, attempt

    job = {"metadata": {"name": manifest["metadata"]["name"]},
           "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "PyTorchJobFailed"}]}}
    found = diagnose(PYTORCHJOB, job, statuses, [])
    assert found.pod == names["worker"], found
    named = own_report(found.failure, worker_lines[-20:])
    assert (named.rank, named.pod, named.exit_code) == (3, names["worker"], 1), named
    assert named.paragraph().startswith(
        f"Run failed: rank 3 (pod {names['worker']}): InjectedFault: injected fault (fault=raise)."), named.paragraph()
