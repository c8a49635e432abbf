"""Each class of bad input to the Kubernetes launchers: one sentence naming the key."""

from __future__ import annotations

import pytest

from aegis.config.validation import validate
from aegis.errors import ConfigError
from aegis.k8s import images, naming, quantities
from k8s_helpers import IMAGE, compose_cfg, run_train


@pytest.mark.parametrize("launcher, overrides, words", [
    ("k8s-job", ["launcher.image=null"], "launcher.image is required"),
    ("k8s-job", ["launcher.image=''"], "launcher.image is required"),
    ("pytorchjob", ["launcher.image=repo/aegis"], "launcher.image='repo/aegis' has no tag or digest"),
    ("k8s-job", ["launcher.image=Repo/Aegis:1"], "is not an image reference"),
    ("k8s-job", ["launcher.image=repo/aegis:bad tag"], "is not an image reference"),
    ("k8s-job", [f"launcher.image={IMAGE}", "launcher.resources.cpu=two"],
     r"launcher.resources.cpu='two' is not a Kubernetes quantity: expected e.g. 2, 500m, 1.5"),
    ("k8s-job", [f"launcher.image={IMAGE}", "launcher.resources.memory=4GB"], "launcher.resources.memory='4GB'"),
    ("k8s-job", [f"launcher.image={IMAGE}", "launcher.resources.memory_limit=1Gi"],
     "memory_limit='1Gi' is below launcher.resources.memory"),
    ("k8s-job", [f"launcher.image={IMAGE}", "launcher.shm_size=lots"], "launcher.shm_size='lots'"),
    ("k8s-job", [f"launcher.image={IMAGE}", "launcher.resources.gpu=-1"], "launcher.resources.gpu=-1 is invalid"),
    ("k8s-job", [f"launcher.image={IMAGE}", "launcher.job_name=My_Job"], "launcher.job_name='My_Job'"),
    ("pytorchjob", [f"launcher.image={IMAGE}", "launcher.job_name=1job"], "DNS-1035"),
    ("k8s-job", [f"launcher.image={IMAGE}", "launcher.namespace=Team_A"], "launcher.namespace='Team_A'"),
    ("k8s-job", [f"launcher.image={IMAGE}", "+launcher.env.AWS_SECRET_ACCESS_KEY=abc"],
     "launcher.env.AWS_SECRET_ACCESS_KEY looks like a credential"),
    ("k8s-job", [f"launcher.image={IMAGE}", "+launcher.secret_env.TOKEN=justakey"],
     "launcher.secret_env.TOKEN='justakey' is not a Secret key reference"),
    ("k8s-job", [f"launcher.image={IMAGE}", "launcher.outputs.host_path=/mnt"], "choose one"),
    ("k8s-job", [f"launcher.image={IMAGE}", "launcher.outputs.mount_path=outputs"], "must be an absolute path"),
    ("k8s-job", [f"launcher.image={IMAGE}", "launcher.backoff_limit=-1"], "launcher.backoff_limit=-1 is invalid"),
    ("k8s-job", [f"launcher.image={IMAGE}", "launcher.image_pull_policy=Sometimes"], "launcher.image_pull_policy"),
    ("k8s-job", [f"launcher.image={IMAGE}", "+launcher.labels.team=a b"], "launcher.labels.team='a b'"),
    ("k8s-job", [f"launcher.image={IMAGE}", "launcher.tolerations=[{operator: Exists, value: x}]"],
     r"launcher.tolerations\[0\].value must be null"),
    ("k8s-job", [f"launcher.image={IMAGE}", "launcher.tolerations=[{key: a, operator: Maybe}]"],
     r"launcher.tolerations\[0\].operator='Maybe' is invalid"),
    ("k8s-job", [f"launcher.image={IMAGE}", "launcher.dry_run=true", "launcher.server_dry_run=true"], "choose one"),
    ("pytorchjob", [f"launcher.image={IMAGE}", "launcher.nodes=0"], "launcher.nodes=0 is invalid"),
    ("pytorchjob", [f"launcher.image={IMAGE}", "launcher.nproc_per_node=0"], "launcher.nproc_per_node=0 is invalid"),
    ("pytorchjob", [f"launcher.image={IMAGE}", "launcher.clean_pod_policy=Some"], "launcher.clean_pod_policy"),
    ("pytorchjob", [f"launcher.image={IMAGE}", "launcher.nodes=1", "launcher.elastic.enabled=true"],
     "needs at least one Worker"),
    ("pytorchjob", [f"launcher.image={IMAGE}", "launcher.nodes=5", "launcher.elastic.enabled=true",
                    "launcher.elastic.max_nodes=4"], "must lie within"),
    ("pytorchjob", [f"launcher.image={IMAGE}", "launcher.resources.gpu=1", "launcher.nproc_per_node=2"],
     "exceeds launcher.resources.gpu=1"),
    ("pytorchjob", [f"launcher.image={IMAGE}", "strategy=ddp", "strategy.num_nodes=3"],
     "disagrees with launcher.nodes=2"),
])
def test_bad_input_is_one_sentence_naming_the_key(launcher, overrides, words):
    cfg = compose_cfg(f"launcher={launcher}", *overrides)
    with pytest.raises(ConfigError, match=words) as info:
        validate(cfg)
    assert "\n" not in str(info.value)


def test_wrong_type_fails_while_composing():
    with pytest.raises(Exception, match="launcher.nodes"):
        compose_cfg("launcher=pytorchjob", "launcher.nodes=two")


@pytest.mark.slow  # in-process: test_bad_input_is_one_sentence_naming_the_key (pytorchjob, repo/aegis)
def test_bad_input_exits_1_before_any_run_dir(tmp_path):
    result = run_train("launcher=pytorchjob", "launcher.image=repo/aegis", "launcher.dry_run=true",
                       cwd=tmp_path, env={"AEGIS_OUTPUT_ROOT": str(tmp_path / "out")})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: launcher.image='repo/aegis' has no tag or digest: expected <registry>/<repo>:<tag> or "
        "<repo>@sha256:<digest>, e.g. ghcr.io/acme/aegis:0.1.0."]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text, ok", [("2", True), ("500m", True), ("1.5", True), ("4Gi", True), ("1e3", True),
                                      ("two", False), ("4GB", False), ("-1", False), ("", False), ("1.2.3", False)])
def test_quantities(text, ok):
    assert quantities.is_quantity(text) is ok


@pytest.mark.parametrize("image, problem", [
    ("aegis:0.1", None), ("ghcr.io/acme/aegis:0.1.0", None), ("localhost:5000/aegis:dev", None),
    ("repo/aegis@sha256:" + "a" * 64, None), ("repo/aegis", "has no tag or digest"),
    ("localhost:5000/aegis", "has no tag or digest"), ("repo/Aegis:1", "is not an image reference"),
])
def test_images(image, problem):
    assert images.problem(image) == problem


def test_names_are_dns_safe_and_fit():
    name = naming.job_name("My Very_Long Experiment Name " * 3, "2026-01-01_00-00-00_abcdef-3")
    assert naming.is_dns_1035_label(name) and len(name) <= naming.MAX_JOB_NAME
    assert name.endswith("260101-000000-abcdef-3")
    assert naming.job_name("9lives", "pinned", nonce="abc123") == "x-9lives-pinned-abc123"
