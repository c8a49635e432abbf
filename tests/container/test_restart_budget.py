"""A PyTorchJob pod's restart budget in the built image: the rendered Master pod, recreated as
the Training Operator v1.9.4 recreates it under ``restartPolicy: ExitCode`` (same pod name, a
new uid, while its ``pytorch`` container exits >= 128: ``pkg/controller.v1/common/pod.go``), with
a container killed by SIGKILL on every attempt (as the OOM killer would). With
``launcher.max_restarts=1`` two attempts run and the third pod exits 3, saying why, before
torchrun starts; the count lives on the outputs volume the pods share."""

from __future__ import annotations

import uuid

import pytest

import container_helpers as ctr
from test_container import outputs_dir, render, volumes

pytestmark = pytest.mark.container

KILLED = ["python", "-m", "aegis.launch.gang", "python", "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]


def test_a_pod_killed_on_every_attempt_stops_after_max_restarts(image, tmp_path):
    manifest = render(tmp_path, "strategy=ddp", "launcher=pytorchjob", f"launcher.image={image}", "launcher.nodes=1",
                      "launcher.max_restarts=1", "trainer=smoke", "logger=csv")
    pod = ctr.pod_specs(manifest)["master"]
    pod["containers"][0]["args"] = KILLED  # what the gang's supervisor runs stands in for torchrun
    pod_name = f"{manifest['metadata']['name']}-master-0"
    outputs = outputs_dir(tmp_path)
    codes, last_log = [], ""
    for attempt in range(4):
        name = f"aegis-budget-{uuid.uuid4().hex[:8]}"
        downward = {"AEGIS_POD_NAME": pod_name, "AEGIS_POD_UID": str(uuid.uuid4())}  # the downward API's
        try:
            ctr.start(ctr.run_args(pod, name=name, volumes=volumes(tmp_path, outputs), env=downward))
            codes.append(ctr.wait(name, timeout=120))
            last_log = ctr.logs(name)
        finally:
            ctr.remove(name)
        if codes[-1] < 128:  # the operator fails the PyTorchJob
            break
    assert codes == [137, 137, 3], last_log
    assert (f"Error: The restart budget of this PyTorchJob is spent: pod {pod_name} was started 3 times" in last_log
            and "launcher.max_restarts=1 allows 2" in last_log), last_log
    assert len(list(outputs.rglob(f"pod-attempts/*/{pod_name}.*.json"))) == 3
