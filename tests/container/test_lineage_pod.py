"""A pod's lineage, for real: the built image runs a rendered Job pod that tracks to MLflow.

The pod has no .git and no API access: what it records comes from the rendered env (the
image reference, the submitter's launch, the commit docker/build.sh recorded for the image)
and the node the kubelet fills in through the downward API (given here as podman would
not). The submitting side then finds the pod's MLflow run with ``aegis show``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

import container_helpers as ctr
from test_container import outputs_dir, volumes

pytestmark = pytest.mark.container


def test_a_job_pods_mlflow_run_names_its_image_commit_node_and_launch(image, image_build, tmp_path):
    from mlflow.tracking import MlflowClient

    root = tmp_path / "render"
    overrides = [f"launcher.image={image}", "launcher=k8s-job", "trainer=smoke", "trainer.max_epochs=1",
                 "logger.register_model=false"]
    env = {**os.environ, "AEGIS_OUTPUT_ROOT": str(root)}
    rendered = subprocess.run([sys.executable, str(ctr.REPO / "train.py"), *overrides, "launcher.dry_run=true"],
                              cwd=ctr.REPO, env=env, capture_output=True, text=True, timeout=120)
    assert rendered.returncode == 0, rendered.stderr[-3000:]
    [path] = list(root.rglob("job.yaml"))
    pod = ctr.pod_specs(ctr.load_manifest(path))["job"]
    outputs = outputs_dir(tmp_path)
    name = f"aegis-lineage-{uuid.uuid4().hex[:8]}"
    try:
        ctr.start(ctr.run_args(pod, name=name, volumes=volumes(tmp_path, outputs), env={"NODE_NAME": "node-7"}))
        code = ctr.wait(name)
        log = ctr.logs(name)
    finally:
        ctr.remove(name)
    assert code == 0, log[-3000:]

    [tracking] = list(outputs.rglob("tracking.json"))
    run_id = json.loads(tracking.read_text())["run_id"]
    tags = MlflowClient(f"sqlite:///{outputs / 'mlflow.db'}").get_run(run_id).data.tags
    built = json.loads(image_build.records.read_text())[image]
    assert tags["aegis.image"] == image
    assert tags["aegis.launch.launcher"] == "k8s-job" and tags["aegis.launch.node_name"] == "node-7"
    assert tags["aegis.reproduce"] == "python train.py " + " ".join(overrides + ["launcher.dry_run=true"])
    assert tags["mlflow.source.type"] == "JOB"
    if built.get("revision"):  # built from a checkout: the image's commit is the run's
        assert tags["mlflow.source.git.commit"] == built["revision"]
        assert tags["aegis.git.dirty"] == ("true" if built.get("dirty") else "false")
        assert tags["aegis.git.from"] == "the image's build record (docker/build.sh)"

    # On the submitting side: the run dir has job.json's sibling job.yaml, no tracking.json.
    submitted = path.parent
    (submitted / "job.json").write_text(json.dumps({"launcher": "k8s-job", "run_id": submitted.name,
                                                    "run_dir": str(submitted), "kind": "Job"}))
    shown = subprocess.run([sys.executable, "-m", "aegis", "--root", str(root), "show", str(submitted),
                            "--tracking-uri", f"sqlite:///{outputs / 'mlflow.db'}"],
                           cwd=ctr.REPO, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert f"image        {image}" in shown.stdout.splitlines() and f"manifest     {path}" in shown.stdout
