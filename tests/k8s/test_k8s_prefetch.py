"""``launcher.prefetch_data``: an init container fills the dataset-cache claim before training.

Rendered for both launchers and checked against the Kubernetes schemas; its exact args are
then run here, and the entry they cache is the very entry the training process looks up.
"""

from __future__ import annotations

import json
import subprocess
import sys

import kubernetes_validate
import pytest

from aegis.config.validation import problems
from aegis.data import Cache
from aegis.data.spec import spec_from_config
from aegis.k8s.validate import KUBERNETES_VERSION
from k8s_helpers import IMAGE, compose_cfg, context_for

SHA = "a" * 64


def render(kind, tmp_path, *overrides):
    overrides = (f"launcher={kind}", f"launcher.image={IMAGE}", *overrides)
    cfg = compose_cfg(*overrides)
    from aegis.launch import get_launcher

    return cfg, get_launcher(kind).render(cfg, context_for(cfg, list(overrides), tmp_path / "run"))


def pods(manifest):
    spec = manifest["spec"]
    if "template" in spec:
        return [spec["template"]["spec"]]
    return [r["template"]["spec"] for r in spec["pytorchReplicaSpecs"].values()]


@pytest.mark.parametrize("kind, extra", [("k8s-job", ()), ("pytorchjob", ("launcher.nodes=2",))])
def test_prefetch_renders_an_init_container_on_the_cache_claim(tmp_path, kind, extra):
    cfg, plan = render(kind, tmp_path, "data=image_folder", "data.source=s3://datasets/digits.tar",
                       f"data.sha256={SHA}", "launcher.prefetch_data=true", "+launcher.secret_env.AWS_SECRET_ACCESS_KEY=s3/key",
                       *extra)
    specs = pods(plan.manifest)
    assert len(specs) == (2 if kind == "pytorchjob" else 1)
    for pod in specs:
        [init] = pod["initContainers"]
        main = pod["containers"][0]
        assert init["name"] == "prefetch-data" and init["image"] == main["image"] == IMAGE
        args = init["args"]
        if kind == "pytorchjob":  # counts the pod's attempt first (aegis.launch.restart_budget), then runs it
            assert args[:4] == ["python", "-m", "aegis.launch.restart_budget", "--"]
            args = args[4:]
        assert args[:6] == ["python", "-m", "aegis.data", "--cache", "/data", "fetch"]
        assert json.loads(args[7]) == {
            "kind": "image_folder", "source": "s3://datasets/digits.tar", "sha256": SHA,
            "options": {"channels": None, "image_size": None}, "storage_options": {}}
        assert {"name": "dataset-cache", "mountPath": "/data", "readOnly": False} in init["volumeMounts"]
        assert {"name": "AEGIS_DATASET_CACHE", "value": "/data"} in init["env"]
        assert any(e["name"] == "AWS_SECRET_ACCESS_KEY" and "secretKeyRef" in e["valueFrom"] for e in init["env"])
        template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": {"spec": pod}}
        kubernetes_validate.validate(template, KUBERNETES_VERSION, strict=True)
    assert "initContainers" not in pods(render(kind, tmp_path, "data=image_folder", "data.source=/x.tar",
                                               *extra)[1].manifest)[0]


def test_the_init_containers_command_caches_the_entry_training_looks_up(tmp_path):
    source = tmp_path / "set.npz"
    import numpy as np

    np.savez(source, features=np.arange(40, dtype=np.float32).reshape(20, 2), labels=np.arange(20) % 2)
    cfg, plan = render("k8s-job", tmp_path, "data=arrays", f"data.source={source}", "launcher.prefetch_data=true")
    [init] = pods(plan.manifest)[0]["initContainers"]
    args = list(init["args"])
    args[0], args[4] = sys.executable, str(tmp_path / "cache")
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    from omegaconf import OmegaConf

    expected = spec_from_config(OmegaConf.to_container(cfg.data, resolve=True), "arrays").entry_name
    assert [e.name for e in Cache(tmp_path / "cache").entries()] == [expected]


@pytest.mark.parametrize("overrides, sentence", [
    (("data=digits",), "launcher.prefetch_data=true has nothing to fetch for data=digits: expected data with a "
                       "source (arrays, image_folder), or launcher.prefetch_data=false."),
    (("data=image_folder", "data.source=/x.tar", "launcher.dataset_cache.claim=null"),
     "launcher.prefetch_data=true needs the dataset-cache claim to fill, but launcher.dataset_cache.claim is null"),
    (("data=image_folder", "data.source=/x.tar", "launcher.dataset_cache.read_only=true"),
     "launcher.prefetch_data=true cannot fill a cache mounted read-only"),
])
def test_prefetch_without_something_to_fill_is_one_sentence(overrides, sentence):
    cfg = compose_cfg("launcher=k8s-job", f"launcher.image={IMAGE}", "launcher.prefetch_data=true", *overrides)
    found = problems(cfg).sentences
    assert len(found) == 1 and found[0].startswith(sentence)
