"""Each class of bad input to the Kubernetes launchers: one sentence naming the key."""

from __future__ import annotations

import pytest

from aegis.config.validation import validate
from aegis.errors import ConfigError
from aegis.core import quantities
from aegis.k8s import images, naming
from k8s_helpers import IMAGE, compose_cfg, run_train


@pytest.mark.parametrize("launcher, overrides, words", [
    ("k8s-job", [], "launcher.image is required for launcher=k8s-job: build the image with docker/build.sh, push it"),
    ("pytorchjob", [], "launcher.image is required for launcher=pytorchjob"),
    ("k8s-job", ["launcher.image=null"], "launcher.image is required"),
    ("k8s-job", ["launcher.image=''"], "launcher.image is required"),
    ("k8s-job", ["launcher.image=aegis-training:0.1.0"],
     r"launcher.image='aegis-training:0.1.0' names no registry host, so the cluster would pull it from Docker Hub "
     r"\(docker.io/library/aegis-training:0.1.0\).*launcher.allow_unqualified_image=true"),
    ("pytorchjob", ["launcher.image=team/aegis:1"], r"pull it from Docker Hub \(docker.io/team/aegis:1\)"),
    ("k8s-job", ["launcher.image=aegis@sha256:" + "a" * 64], "names no registry host"),
    ("k8s-job", [f"launcher.image={IMAGE}", "launcher.termination_grace_period_s=0"],
     "launcher.termination_grace_period_s=0 is invalid: expected a number >= 1"),
    ("k8s-job", [f"launcher.image={IMAGE}", "launcher.shm_size=1.5Gi"],
     r"launcher.shm_size='1.5Gi' is more than half of the memory limit launcher.resources.memory='2Gi'.*"
     r"at most 1Gi"),
    ("pytorchjob", [f"launcher.image={IMAGE}", "launcher.resources.memory_limit=3Gi", "launcher.shm_size=2Gi"],
     r"launcher.shm_size='2Gi' is more than half of the memory limit launcher.resources.memory_limit='3Gi'"),
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
     r"launcher.secret_env.TOKEN \(value not shown: it may be the secret itself\) is not a Secret key reference"),
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


HOST = ["launcher.outputs.claim=null", "launcher.outputs.allow_host_path=true"]


@pytest.mark.parametrize("launcher, overrides, words", [
    ("k8s-job", ["launcher.outputs.claim=null", "launcher.outputs.host_path=/mnt/aegis"],
     r"launcher.outputs.host_path='/mnt/aegis' mounts a directory of the node read-write into every pod, which is "
     r"refused unless launcher.outputs.allow_host_path=true"),
    ("pytorchjob", [*HOST, "launcher.outputs.host_path=/"], r"host_path='/' would give the pod the node's root"),
    ("k8s-job", [*HOST, "launcher.outputs.host_path=/var/run/docker.sock"], "a container runtime's socket"),
    ("k8s-job", [*HOST, "launcher.outputs.host_path=/run/containerd/containerd.sock"], "a container runtime's socket"),
    ("k8s-job", [*HOST, "launcher.outputs.host_path=/var/run/crio/crio.sock"], "a container runtime's socket"),
    ("k8s-job", [*HOST, "launcher.outputs.host_path=/etc"], "the node's /etc to read and write"),
    ("k8s-job", [*HOST, "launcher.outputs.host_path=//etc/./kubernetes"], "the node's /etc to read and write"),
    ("k8s-job", [*HOST, "launcher.outputs.host_path=/proc/1"], "the node's /proc"),
    ("k8s-job", [*HOST, "launcher.outputs.host_path=/sys"], "the node's /sys"),
    ("k8s-job", [*HOST, "launcher.outputs.host_path=/var"], "the node's /var/run"),  # holds the sockets
    ("k8s-job", [*HOST, "launcher.outputs.host_path=/run/user"], "the node's /run"),
    ("k8s-job", [*HOST, "launcher.outputs.host_path=mnt/x"], "is relative"),
    ("k8s-job", ["launcher.outputs.mount_path=/app"], r"mount_path='/app' would hide the image's /app"),
    ("pytorchjob", ["launcher.outputs.mount_path=/"], r"mount_path='/' would hide the image's /app"),
    ("k8s-job", ["launcher.outputs.mount_path=/usr"], "would hide the image's /usr"),
    ("k8s-job", ["launcher.outputs.mount_path=/bin"], "would hide the image's /bin"),
    ("k8s-job", ["launcher.outputs.mount_path=/opt"], "would hide the image's /opt/venv"),
    ("k8s-job", ["launcher.dataset_cache.mount_path=/app/conf"], r"dataset_cache.mount_path='/app/conf' would hide"),
    ("k8s-job", ["launcher.working_dir=/srv/code", "launcher.outputs.mount_path=/srv"], "would hide the image's /srv/code"),
    ("k8s-job", ["+launcher.labels={aegis.dev/run-id: victim-run}"],
     r"launcher.labels key 'aegis.dev/run-id' is one Aegis sets to find the job and its pods"),
    ("pytorchjob", ["+launcher.labels={app.kubernetes.io/instance: victim-job}"],
     r"launcher.labels key 'app.kubernetes.io/instance' is one Aegis sets"),
    ("k8s-job", ["+launcher.annotations={aegis.dev/run-dir: /elsewhere}"], "launcher.annotations key 'aegis.dev/run-dir'"),
    ("k8s-job", ["+launcher.annotations={container.apparmor.security.beta.kubernetes.io/train: unconfined}"],
     "without AppArmor/seccomp confinement"),
    ("k8s-job", ["+launcher.annotations={seccomp.security.alpha.kubernetes.io/pod: Unconfined}"],
     "without AppArmor/seccomp confinement"),
    ("k8s-job", ["launcher.security.run_as_group=0"], "launcher.security.run_as_group=0 is invalid: expected a number >= 1"),
    ("k8s-job", ["launcher.security.fs_group=0"], "launcher.security.fs_group=0 is invalid: expected a number >= 1"),
    ("k8s-job", ["+launcher.foo=1"], "launcher.foo is not a key of launcher: expected one of name, image"),
    ("pytorchjob", ["+launcher.host_network=true"], "launcher.host_network is not a key of launcher"),
    ("k8s-job", ["+launcher.security.privileged=true"],
     "launcher.security.privileged is not a key of launcher.security: expected one of run_as_user"),
    ("local", ["+launcher.foo=1"], "launcher.foo is not a key of launcher"),
])
def test_pods_get_no_node_paths_hidden_code_borrowed_identity_or_unknown_keys(launcher, overrides, words):
    cfg = compose_cfg(f"launcher={launcher}", *([f"launcher.image={IMAGE}"] if launcher != "local" else []),
                      *overrides)
    with pytest.raises(ConfigError, match=words) as info:
        validate(cfg)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("overrides", [
    [*HOST, "launcher.outputs.host_path=/mnt/aegis-outputs"],
    ["launcher.outputs.mount_path=/app/outputs", "launcher.dataset_cache.mount_path=/mnt/data"],
    ["+launcher.labels={example.com/team: ml, app: trainer}"],
    ["+launcher.annotations={container.apparmor.security.beta.kubernetes.io/train: runtime/default}"],
    ["launcher.security.fs_group=null"],
])
def test_safe_pod_settings_are_accepted(overrides):
    validate(compose_cfg("launcher=k8s-job", f"launcher.image={IMAGE}", *overrides))


def test_every_identity_label_and_annotation_the_renderer_sets_is_refused_in_launcher_labels():
    from aegis.k8s import pod

    cfg = compose_cfg("launcher=k8s-job", f"launcher.image={IMAGE}")
    for group, keys in (("labels", pod.labels(cfg, "job", "run")), ("annotations", pod.annotations(cfg, "run"))):
        for key in keys:
            bad = compose_cfg("launcher=k8s-job", f"launcher.image={IMAGE}", f"+launcher.{group}={{{key}: x}}")
            with pytest.raises(ConfigError, match=f"launcher.{group} key '{key}' is one Aegis sets"):
                validate(bad)


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
        "<registry>/<repo>@sha256:<digest>, e.g. ghcr.io/acme/aegis:0.1.0."]
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


@pytest.mark.parametrize("image, host", [
    ("ghcr.io/acme/aegis:0.1.0", "ghcr.io"), ("localhost:5000/aegis:dev", "localhost:5000"),
    ("localhost/aegis:dev", "localhost"), ("registry:5000/aegis:1", "registry:5000"),
    ("reg.example.com/aegis@sha256:" + "a" * 64, "reg.example.com"),
    ("aegis:0.1", None), ("team/aegis:1", None), ("team/sub/aegis:1", None),
])
def test_registry_host(image, host):
    assert images.registry(image) == host


@pytest.mark.parametrize("overrides", [
    ["launcher.image=registry.example.com/ml/aegis@sha256:" + "b" * 64],  # a digest: preferred
    ["launcher.image=registry.example.com/ml/aegis:0.1.0-3f2a1bc@sha256:" + "b" * 64],
    ["launcher.image=localhost:5000/aegis:dev"],
    ["launcher.image=aegis-training:0.1.0", "launcher.allow_unqualified_image=true"],  # kind/minikube
    [f"launcher.image={IMAGE}", "launcher.resources.memory=1Gi", "launcher.shm_size=512Mi"],  # exactly half
    [f"launcher.image={IMAGE}", "launcher.resources.memory=null", "launcher.shm_size=64Gi"],  # no limit
    [f"launcher.image={IMAGE}", "launcher.resources.gpu=1"],  # no build record: nothing known
])
def test_good_images_and_sizes_validate(overrides):
    validate(compose_cfg("launcher=k8s-job", *overrides))


def _record(path, reference, **entry):
    import json

    build = {"id": "sha256:" + "1" * 64, "accelerator": "cpu", "revision": "3f2a1bc", "dirty": False,
             "built_at": "2026-11-29T10:00:00+00:00", "digest": None, **entry}
    path.write_text(json.dumps({reference: build}))


def test_gpu_with_an_image_built_without_cuda_is_refused(no_build_record):
    _record(no_build_record, IMAGE, accelerator="cpu")
    cfg = compose_cfg("launcher=pytorchjob", f"launcher.image={IMAGE}", "launcher.resources.gpu=1")
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    [sentence] = str(info.value).splitlines()
    assert sentence.startswith(f"launcher.resources.gpu=1 asks for GPUs but launcher.image={IMAGE} was built "
                               "without CUDA")
    assert "docker/build.sh --cuda" in sentence
    validate(compose_cfg("launcher=pytorchjob", f"launcher.image={IMAGE}"))  # the CPU image on CPU: fine
    _record(no_build_record, IMAGE, accelerator="cuda")
    validate(cfg)


@pytest.mark.parametrize("content", ["", "not json", "[1, 2]", '{"%s": "cpu"}' % IMAGE, '{"%s": {}}' % IMAGE])
def test_an_unreadable_or_odd_build_record_is_no_record(no_build_record, content):
    no_build_record.write_text(content)
    validate(compose_cfg("launcher=k8s-job", f"launcher.image={IMAGE}", "launcher.resources.gpu=1"))


def test_the_build_record_defaults_to_the_xdg_cache(tmp_path, monkeypatch):
    from aegis.k8s import builds

    monkeypatch.delenv("AEGIS_IMAGES_FILE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert builds.records_file() == tmp_path / "cache" / "aegis" / "images.json"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert builds.records_file() == tmp_path / "home" / ".cache" / "aegis" / "images.json"
    _record(builds.records_file().parent.mkdir(parents=True) or builds.records_file(), IMAGE, accelerator="cpu")
    assert builds.lookup(IMAGE).accelerator == "cpu" and builds.lookup("other.io/x:1") is None


def test_names_are_dns_safe_and_fit():
    name = naming.job_name("My Very_Long Experiment Name " * 3, "2026-01-01_00-00-00_abcdef-3")
    assert naming.is_dns_1035_label(name) and len(name) <= naming.MAX_JOB_NAME
    assert name.endswith("260101-000000-abcdef-3")
    assert naming.job_name("9lives", "pinned", nonce="abc123") == "x-9lives-pinned-abc123"
