"""k8s/ holds exactly what conf/ renders: a test fails when the checked-in files drift."""

from __future__ import annotations

import kubernetes_validate
import yaml

from aegis.generate import render_all
from aegis.k8s.validate import KUBERNETES_VERSION
from aegis.launch.pytorchjob.validate import pytorchjob_problems
from aegis.launch.rayjob.validate import rayjob_problems
from aegis.launch.trainjob.validate import runtime_problems, trainjob_problems
from k8s_helpers import ROOT


def test_checked_in_manifests_match_the_renderer():
    files = render_all(ROOT / "conf")
    assert sorted(files) == ["clustertrainingruntime-aegis-torch.yaml", "job-training.yaml",
                             "pvc-dataset-cache.yaml", "pytorchjob-s3-dataset.yaml",
                             "pytorchjob-training.yaml", "rayjob-tune.yaml", "trainjob-training.yaml"]
    for name, text in files.items():
        on_disk = (ROOT / "k8s" / name).read_text()
        assert on_disk == text, f"k8s/{name} drifted from conf/: run `python -m aegis.generate`"


def test_checked_in_manifests_validate():
    for doc in yaml.safe_load_all((ROOT / "k8s" / "job-training.yaml").read_text()):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    for doc in yaml.safe_load_all((ROOT / "k8s" / "pvc-dataset-cache.yaml").read_text()):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    ptj = yaml.safe_load((ROOT / "k8s" / "pytorchjob-training.yaml").read_text())
    assert pytorchjob_problems(ptj) == []
    tj = yaml.safe_load((ROOT / "k8s" / "trainjob-training.yaml").read_text())
    assert trainjob_problems(tj) == []
    assert tj["spec"]["runtimeRef"]["name"] == "aegis-torch" and tj["spec"]["trainer"]["numNodes"] == 2
    runtime = yaml.safe_load((ROOT / "k8s" / "clustertrainingruntime-aegis-torch.yaml").read_text())
    assert runtime_problems(runtime) == [] and runtime["metadata"]["name"] == "aegis-torch"
    rj = yaml.safe_load((ROOT / "k8s" / "rayjob-tune.yaml").read_text())
    assert rayjob_problems(rj) == [] and rj["spec"]["shutdownAfterJobFinishes"] is True
    assert rj["spec"]["entrypoint"].startswith("python train.py search=digits_mlp launcher=local ")
    example = yaml.safe_load((ROOT / "k8s" / "pytorchjob-s3-dataset.yaml").read_text())
    assert pytorchjob_problems(example) == []
    for replica in example["spec"]["pytorchReplicaSpecs"].values():  # the cache filled before training
        [init] = replica["template"]["spec"]["initContainers"]
        assert init["name"] == "prefetch-data" and "s3://my-bucket/datasets/digits.tar" in init["args"][-1]


def test_checked_in_claims_are_shared_and_no_file_names_a_namespace():
    """kubectl apply -n NS -f k8s/... puts them in NS (a namespace in the file would refuse it),
    and pods of one job on several nodes can all mount the claims."""
    for path in sorted((ROOT / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert "namespace" not in doc["metadata"], path.name
    claims = list(yaml.safe_load_all((ROOT / "k8s" / "pvc-dataset-cache.yaml").read_text()))
    assert {c["metadata"]["name"] for c in claims} == {"aegis-outputs", "aegis-dataset-cache"}
    assert all(c["spec"]["accessModes"] == ["ReadWriteMany"] for c in claims)


def test_generating_reads_no_build_record(no_build_record):
    """The checked-in files never depend on what this machine built and pushed."""
    import json

    from aegis.generate import IMAGE

    no_build_record.write_text(json.dumps({IMAGE: {"accelerator": "cpu", "digest": "sha256:" + "d" * 64}}))
    files = render_all(ROOT / "conf")
    assert "sha256:" not in files["job-training.yaml"]
    assert files["job-training.yaml"] == (ROOT / "k8s" / "job-training.yaml").read_text()


def test_the_generator_defaults_to_this_checkouts_conf_and_k8s_and_keeps_its_old_entry_point():
    """``python -m aegis.generate`` with no flags reads conf/ and writes k8s/ of this checkout;
    ``python -m aegis.k8s.generate`` (its name before it moved up) runs the same main."""
    import aegis.generate as generate
    from aegis.k8s.generate import main as old_main

    assert (generate.ROOT / "conf" / "train.yaml").is_file()
    assert (generate.ROOT / "k8s").is_dir()
    assert old_main is generate.main
