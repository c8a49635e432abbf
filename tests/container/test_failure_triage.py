"""A pod that outgrows its memory limit is reported as out of memory, not as "exit code 137".

No kubelet here: the rendered Job pod runs under podman with its container's
``resources.limits.memory`` as the cgroup limit (no swap, as the kubelet sets it). What a
kubelet would then report comes from where its runtime gets it: an OOM event of the
container's memory cgroup (containerd's TaskOOM → ``reason: OOMKilled``), which
``container_helpers.OOMEvents`` watches the same way (podman's own ``State.OOMKilled`` is
not set in this sandbox). ``container_helpers.pod_status`` builds that pod status and it
goes through the same ``aegis.k8s.triage`` the follower and ``aegis status`` use on a
cluster. Without the OOM event, the same pod is what the triage calls "killed by SIGKILL":
the exit code alone cannot tell.
"""

from __future__ import annotations

import uuid

import pytest

import container_helpers as ctr
from test_container import outputs_dir, render, volumes

pytestmark = pytest.mark.container

# Torch and Lightning take ~550 MB before training; a 16384x16384 layer is 1.07 GB of float32
# weights, written at initialisation: over a 1Gi limit within seconds of the model's creation.
# (Measured: the same pod with the default model completes under the same limit, ~33 s; this
# one is OOM-killed in ~31 s, most of it torch's import.)
TOO_BIG = ("data=synthetic", "data.num_samples=2000", "model.hidden_dims=[16384,16384]",
           "launcher.resources.memory=1Gi", "trainer=smoke", "logger=csv")


def test_a_pod_over_its_memory_limit_is_out_of_memory_not_exit_137(image, tmp_path):
    from aegis.k8s.triage import diagnose, own_report
    from aegis.launch.k8s_job.kind import JOB

    manifest = render(tmp_path, f"launcher.image={image}", "launcher=k8s-job", *TOO_BIG)
    pod = ctr.pod_specs(manifest)["job"]
    assert pod["containers"][0]["resources"]["limits"]["memory"] == "1Gi"
    name = f"aegis-oom-{uuid.uuid4().hex[:8]}"
    try:
        ctr.start(ctr.run_args(pod, name=name, volumes=volumes(tmp_path, outputs_dir(tmp_path)), memory_limit=True))
        events = ctr.OOMEvents(name)  # torch's import takes seconds: watching begins long before the model
        code = ctr.wait(name, timeout=300)
        log = ctr.logs(name)
        status = ctr.pod_status(pod, name, oom_event=events.killed())
    finally:
        ctr.remove(name)
    assert code == 137, log[-3000:]
    assert status["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "OOMKilled", log[-3000:]

    job = {"metadata": {"name": manifest["metadata"]["name"]},
           "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}}
    found = diagnose(JOB, job, [status], [])
    failure = own_report(found.failure, log.splitlines()[-20:])
    paragraph = failure.paragraph()
    assert paragraph.startswith(f"Run failed: pod {name}: out of memory (OOMKilled) at limit 1Gi; "
                                "raise launcher.resources.memory."), paragraph
    assert (failure.exit_code, failure.signal) == (137, "SIGKILL")
    assert "exited with code" not in paragraph
