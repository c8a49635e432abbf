"""The manifest and the image digest of a cluster job on its MLflow run, recorded by the
follower (aegis.k8s.launch_tags): what the pods cannot know of themselves."""

from __future__ import annotations

import time

import pytest

from aegis.launch import get_launcher
from k8s_helpers import IMAGE, compose_cfg, context_for

DIGEST = "registry.example.com/aegis@sha256:" + "ab" * 32


@pytest.mark.slow  # MLflow migrating a fresh SQLite store: ~20 s on a busy machine
def test_a_finished_job_gets_its_manifest_and_image_digest_on_its_mlflow_run(tmp_path, fake_cluster, capsys):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    made: dict[str, str] = {}

    def on_create(fake, plural, obj):
        name = obj["metadata"]["name"]

        def life():  # the pod's run creates its MLflow run, tagged with the Aegis run id, and succeeds
            experiment = client.create_experiment("train", artifact_location=str(tmp_path / "artifacts"))
            made["run"] = client.create_run(experiment, tags={"aegis.run_id": obj["metadata"]["annotations"][
                "aegis.dev/run-id"]}).info.run_id
            pod = fake.add_pod(f"{name}-x7k2p", {"job-name": name}, "train", image=IMAGE)["metadata"]["name"]
            fake.pods[("default", pod)]["status"]["containerStatuses"][0]["imageID"] = DIGEST
            fake.container_state(pod, {"running": {}}, phase="Running")
            time.sleep(0.2)
            fake.container_state(pod, {"terminated": {"exitCode": 0, "reason": "Completed"}}, phase="Succeeded")
            fake.set_status(plural, name, {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})

        fake.run(life)

    fake_cluster.on_create = on_create
    overrides = ("launcher=k8s-job", f"launcher.image={IMAGE}", "launcher.poll_interval_s=0.1", "logger=mlflow",
                 f"logger.tracking_uri={uri}")
    cfg = compose_cfg(*overrides)
    run_dir = tmp_path / "run"
    assert get_launcher("k8s-job").launch(cfg, context_for(cfg, overrides, run_dir)) == 0
    err = capsys.readouterr().err
    assert f"MLflow run {made['run']}: recorded manifest lineage/job.yaml and aegis.image.id={DIGEST}" in err, err
    run = client.get_run(made["run"])
    assert run.data.tags["aegis.image.id"] == DIGEST
    assert run.data.tags["aegis.launch.manifest"] == "lineage/job.yaml"
    [artifact] = client.list_artifacts(made["run"], "lineage")
    logged = client.download_artifacts(made["run"], artifact.path, str(tmp_path / "down"))
    assert open(logged).read() == (run_dir / "job.yaml").read_text()  # the manifest that was submitted


def test_nothing_is_recorded_from_here_for_a_store_only_the_pods_reach(tmp_path):
    from aegis.k8s.launch_tags import image_ids, record
    from aegis.launch.k8s_job.kind import JOB

    pods = [{"status": {"containerStatuses": [{"name": JOB.container, "imageID": DIGEST},
                                              {"name": "sidecar", "imageID": "other@sha256:00"}]}},
            {"status": {"containerStatuses": [{"name": JOB.container, "imageID": DIGEST}]}}]
    assert image_ids(JOB, pods) == [DIGEST]  # the training container's, once
    manifest = tmp_path / "job.yaml"
    manifest.write_text("kind: Job\n")
    pods_store = {"uri": f"sqlite:///{tmp_path}/not-here/mlflow.db", "experiment": "train"}
    assert record(pods_store, "run-1", manifest, JOB, pods) is None
    assert record(None, "run-1", manifest, JOB, pods) is None
