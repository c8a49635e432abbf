"""Lineage: what produced a run, on the MLflow run and on its registered version.

Collection (aegis.training.lineage) is tested without MLflow on throwaway git checkouts;
one in-process training run in this repository's checkout is read back with MLflow's own
client; the slow tier runs ``python train.py`` and ``aegis show`` as a user would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aegis.launch.base import RunContext
from aegis.training import lineage
from aegis.training.lineage import LaunchOrigin

ROOT = Path(__file__).resolve().parents[1]
HAS_GIT = shutil.which("git") is not None
# New MLflow stores are copies of a fresh one (tests/conftest.py): their creation is not the subject here.
pytestmark = pytest.mark.usefixtures("store_from_template")
needs_git = pytest.mark.skipif(not HAS_GIT, reason="git is not installed")


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@x", "HOME": str(cwd), "PATH": "/usr/bin:/bin"}).stdout.strip()


@pytest.fixture()
def checkout(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "feature")
    (repo / "train.py").write_text("print('hi')\n")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "first")
    return repo


# ----------------------------------------------------------------- collection, no MLflow


@needs_git
def test_a_clean_checkout_names_commit_branch_and_remote_without_credentials(checkout):
    _git(checkout, "remote", "add", "origin", "https://alice:s3cr3t@git.example.com/team/aegis.git")
    tags = lineage.git_tags(checkout / "train.py")
    assert tags[lineage.GIT_COMMIT] == _git(checkout, "rev-parse", "HEAD")
    assert tags[lineage.GIT_BRANCH] == "feature"
    assert tags[lineage.GIT_DIRTY] == "false"
    assert tags[lineage.GIT_REPO_URL] == "https://git.example.com/team/aegis.git"
    assert lineage.GIT_STATE not in tags


@needs_git
def test_a_changed_tracked_file_is_dirty_an_untracked_one_is_not(checkout):
    (checkout / "notes.txt").write_text("untracked\n")
    assert lineage.git_tags(checkout)[lineage.GIT_DIRTY] == "false"
    (checkout / "train.py").write_text("print('changed')\n")
    assert lineage.git_tags(checkout)[lineage.GIT_DIRTY] == "true"


@needs_git
def test_a_detached_head_has_a_commit_and_no_branch(checkout):
    _git(checkout, "checkout", "-q", "--detach")
    tags = lineage.git_tags(checkout)
    assert tags[lineage.GIT_COMMIT] == _git(checkout, "rev-parse", "HEAD") and lineage.GIT_BRANCH not in tags


@needs_git
def test_a_folder_outside_any_checkout_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # never find a checkout above tmp
    plain = tmp_path / "plain"
    plain.mkdir()
    assert lineage.git_tags(plain / "train.py") == {lineage.GIT_STATE: "not a git checkout"}


@needs_git
def test_a_checkout_wins_over_an_images_recorded_commit(checkout):
    env = {lineage.IMAGE_COMMIT_ENV: "ab" * 20, lineage.IMAGE_DIRTY_ENV: "true"}
    assert lineage.code_tags(checkout / "train.py", env)[lineage.GIT_COMMIT] == _git(checkout, "rev-parse", "HEAD")


def test_no_git_installed_is_a_tag_not_a_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on it
    assert lineage.git_tags(tmp_path) == {lineage.GIT_STATE: "git is not installed (or did not answer)"}


def test_the_reproduce_command_is_the_users_launch_without_the_runs_identity():
    origin = LaunchOrigin("torchrun", ("strategy=ddp", "launcher=torchrun", "model.lr=0.01", "run_id=abc",
                                       "hydra.run.dir=/x/y", "logger.tags.note=two words"), "train.py", "train")
    assert lineage.reproduce_command(origin) == ("python train.py strategy=ddp launcher=torchrun model.lr=0.01 "
                                                 "'logger.tags.note=two words'")
    other = LaunchOrigin("local", ("model=cnn",), "train.py", "experiment_x")
    assert lineage.reproduce_command(other) == "python train.py --config-name=experiment_x model=cnn"


def test_a_child_process_records_the_launch_its_parent_passed_down():
    parent = RunContext(run_dir=Path("/r"), run_id="r", task_overrides=("launcher=torchrun", "model.lr=0.1"),
                        config_name="train", entrypoint="/src/train.py")
    env = lineage.launch_env("torchrun", parent)
    child = RunContext(run_dir=Path("/r"), run_id="r", task_overrides=("model.lr=0.1", "launcher=local", "run_id=r"),
                       config_name="train", entrypoint="/src/train.py")
    origin = lineage.origin_of("local", child, env)
    assert origin == LaunchOrigin("torchrun", ("launcher=torchrun", "model.lr=0.1"), "train.py", "train")
    assert lineage.origin_of("local", child, {}).launcher == "local"  # no parent: the process is the launch
    assert lineage.origin_of("local", child, {lineage.LAUNCH_ENV: "{not json"}).launcher == "local"


def test_launch_tags_name_the_image_digest_and_the_node():
    digest = "sha256:" + "ab" * 32
    tags = lineage.launch_tags(LaunchOrigin("pytorchjob", ()), 4, 2,
                               {lineage.IMAGE_ENV: f"reg.example.com/aegis:1.0@{digest}", "NODE_NAME": "gpu-node-7"})
    assert tags["aegis.launch.launcher"] == "pytorchjob"
    assert tags["aegis.launch.world_size"] == "4" and tags["aegis.launch.nodes"] == "2"
    assert tags["aegis.image.digest"] == digest and tags["aegis.launch.node_name"] == "gpu-node-7"
    plain = lineage.launch_tags(LaunchOrigin("k8s-job", ()), 1, 1, {lineage.IMAGE_ENV: "aegis:dev"})
    assert plain["aegis.image"] == "aegis:dev" and "aegis.image.digest" not in plain


def test_data_from_the_cache_is_named_by_its_source_and_sha256(tmp_path):
    import numpy as np

    from aegis.data import prepare
    from aegis.data.spec import spec_from_config

    source = tmp_path / "d.npz"
    np.savez(source, features=np.zeros((20, 3), dtype=np.float32), labels=np.arange(20) % 2)
    cache = tmp_path / "cache"
    data = {"_target_": "aegis.training.datasets.ArraysDataModule", "source": str(source), "sha256": None,
            "storage_options": None, "cache_dir": str(cache), "features_key": "features", "labels_key": "labels"}
    assert lineage.data_tags(data) == {"aegis.data.source": str(source)}  # not cached yet: the URI alone
    entry = prepare(spec_from_config(data, "arrays"), cache)  # as the data module caches it
    tags = lineage.data_tags(data)
    assert tags["aegis.data.sha256"] == entry.meta["sha256"] and len(tags["aegis.data.sha256"]) == 64
    assert tags["aegis.data.source"] == entry.meta["source"] and tags["aegis.data.sha256_pinned"] == "false"
    assert lineage.data_tags({"_target_": "aegis.training.data.DigitsDataModule"}) == {
        "aegis.data.module": "aegis.training.data.DigitsDataModule"}


def test_environment_tags_name_python_torch_lightning_and_cuda():
    import platform

    import torch  # noqa: F401 (training has imported it)

    tags = lineage.environment_tags()
    assert tags["aegis.env.python"] == platform.python_version()
    assert tags["aegis.env.torch"].startswith("2.") and tags["aegis.env.lightning"].startswith("2.")
    assert tags["aegis.env.cuda"]


# ------------------------------------------------------------------- MLflow side


class _FakeRun:
    def __init__(self, tags):
        self.data = type("D", (), {"tags": tags})()


class _Client:
    """The few MlflowClient calls lineage_store makes, on dicts."""

    def __init__(self):
        self.tags: dict[str, str] = {"mlflow.source.name": "pytest"}
        self.files: dict[str, str] = {}

    def get_run(self, run_id):
        return _FakeRun(dict(self.tags))

    def log_batch(self, run_id, tags):
        self.tags.update({t.key: t.value for t in tags})

    def log_text(self, run_id, text, path):
        self.files[path] = text


def test_a_resumed_run_adds_its_attempt_and_keeps_the_first_attempts_tags():
    from aegis.training.lineage_store import record_run

    client = _Client()
    first = lineage.Lineage({lineage.GIT_COMMIT: "aaa", "aegis.env.torch": "2.13"}, {"config.yaml": "a: 1\n"})
    assert record_run(client, "r", first) == 1
    assert client.tags[lineage.GIT_COMMIT] == "aaa" and client.tags["mlflow.source.name"] == "pytest"
    second = lineage.Lineage({lineage.GIT_COMMIT: "bbb", "aegis.env.torch": "2.13", "aegis.image": "x:1"},
                             {"config.yaml": "a: 2\n"})
    assert record_run(client, "r", second) == 2
    assert client.tags[lineage.GIT_COMMIT] == "aaa"  # never overwritten
    assert client.tags["aegis.image"] == "x:1"  # added
    assert client.tags[lineage.ATTEMPTS] == "2"
    assert client.tags[lineage.CHANGED] == "attempt 2: mlflow.source.git.commit"
    assert client.files["config.yaml"] == "a: 1\n"  # the first attempt's at the root
    assert client.files["lineage/attempt-2/config.yaml"] == "a: 2\n"
    assert json.loads(client.files["lineage/attempt-2/lineage.json"])[lineage.GIT_COMMIT] == "bbb"


def test_where_the_ranks_run_is_folded_by_host_and_node():
    ranks = [{"host": "a", "node": "n1"}, {"host": "a", "node": "n1"}, {"host": "b", "node": None},
             {"host": "b", "node": None}, {"host": "a", "node": "n1"}]
    assert lineage.hosts_tag(ranks) == "ranks 0-1 on a (node n1); ranks 2-3 on b; rank 4 on a (node n1)"
    assert lineage.hosts_tag([{"host": "vm", "node": None}]) == "rank 0 on vm"


def test_tags_learnt_later_are_added_and_a_change_is_noted_for_the_attempt():
    from aegis.training.lineage_store import add_tags

    client = _Client()
    client.tags[lineage.ATTEMPTS] = "1"
    add_tags(client, "r", {lineage.HOSTS: "ranks 0-1 on a"})
    assert client.tags[lineage.HOSTS] == "ranks 0-1 on a" and lineage.CHANGED not in client.tags
    client.tags[lineage.ATTEMPTS] = "2"
    add_tags(client, "r", {lineage.HOSTS: "ranks 0-1 on b"})
    assert client.tags[lineage.HOSTS] == "ranks 0-1 on a"
    assert client.tags[lineage.CHANGED] == "attempt 2: aegis.launch.hosts"
    assert client.files["lineage/attempt-2/aegis.launch.hosts.txt"] == "ranks 0-1 on b\n"


def test_show_of_a_run_tracked_without_mlflow_is_one_sentence(tmp_path, capsys):
    from aegis.commands import main

    run_dir = tmp_path / "train" / "runs" / "csv-run"
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(json.dumps({"run_id": "csv-run", "status": "completed"}))
    assert main(["--root", str(tmp_path), "show", "csv-run"]) == 1
    assert capsys.readouterr().err == (f"Error: Run csv-run ({run_dir}) has no tracking.json: it was not tracked "
                                       "with MLflow (logger=csv or none), or it stopped before tracking started.\n")
    assert main(["--root", str(tmp_path), "show", "models:/x"]) == 1
    assert "is not a registered model URI: expected models:/NAME@ALIAS or models:/NAME/VERSION" in \
        capsys.readouterr().err


# ----------------------------------------------------------- a real run, read back


@pytest.fixture()
def train_run(compose, tmp_path, monkeypatch):
    from aegis.training.run import train

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(lineage.LAUNCH_ENV, raising=False)

    def _train(*overrides: str, run_dir: Path | None = None):
        cfg = compose(f"paths.root={tmp_path}", "progress=none", *overrides)
        run_dir = run_dir or tmp_path / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        ctx = RunContext(run_dir=run_dir, run_id=run_dir.name, task_overrides=overrides, config_name="train",
                         entrypoint=str(ROOT / "train.py"))
        return train(cfg, ctx), run_dir

    return _train


@needs_git
def test_a_tracked_run_and_its_registered_version_carry_the_lineage(train_run, tmp_path):
    from mlflow.tracking import MlflowClient

    outcome, run_dir = train_run("trainer=smoke", "trainer.max_epochs=1", "logger.registered_model_name=lin",
                                 "logger.registry_alias=champion", run_dir=tmp_path / "train" / "runs" / "run")
    assert outcome.exit_code == 0
    tracking = outcome.summary["tracking"]
    client = MlflowClient(tracking_uri=tracking["tracking_uri"])
    run_id = tracking["run_id"]
    tags = client.get_run(run_id).data.tags
    head = _git(ROOT, "rev-parse", "HEAD")
    assert tags["mlflow.source.git.commit"] == head
    assert tags["aegis.git.dirty"] in ("true", "false")
    assert tags["aegis.reproduce"] == ("python train.py trainer=smoke trainer.max_epochs=1 "
                                       "logger.registered_model_name=lin logger.registry_alias=champion")
    assert tags["aegis.launch.launcher"] == "local" and tags["aegis.launch.world_size"] == "1"
    assert tags["aegis.data.module"].endswith("DigitsDataModule") and tags["aegis.lineage.attempts"] == "1"
    assert tags["aegis.launch.hosts"] == f"rank 0 on {tags['aegis.launch.host']}"
    config = client.download_artifacts(run_id, "config.yaml", str(tmp_path / "dl"))
    assert Path(config).read_text() == (run_dir / "config.yaml").read_text()
    root = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "overrides.yaml", "lineage"} <= root

    version = client.get_model_version_by_alias("lin", "champion")
    assert str(version.version) == str(tracking["registered_model"]["version"])
    assert version.run_id == run_id and version.tags["mlflow.source.git.commit"] == head
    assert version.tags["aegis.source_run"] == run_id
    assert tracking["registered_model"]["alias_uri"] == "models:/lin@champion"

    resumed, _ = train_run("trainer=smoke", "trainer.max_epochs=2", "logger.register_model=false", run_dir=run_dir)
    assert resumed.summary["tracking"]["run_id"] == run_id
    tags = client.get_run(run_id).data.tags
    assert tags["aegis.lineage.attempts"] == "2"
    assert tags["aegis.reproduce"].endswith("logger.registry_alias=champion")  # the first attempt's stays
    attempts = {a.path for a in client.list_artifacts(run_id, "lineage")}
    assert attempts == {"lineage/attempt-1", "lineage/attempt-2"}

    _shows_the_lineage(tmp_path, run_dir, run_id, head)


def _shows_the_lineage(root: Path, run_dir: Path, run_id: str, head: str) -> None:
    """``aegis show`` of the run (by its id, its dir, its MLflow id) and of the aliased version."""
    import contextlib
    import io

    from aegis.commands import main

    def show(*args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["--root", str(root), "show", *args])
        return code, out.getvalue(), err.getvalue()

    for target in ("run", str(run_dir), run_id):
        code, out, _ = show(target)
        assert code == 0
        rows = {line[:13].strip(): line[13:] for line in out.splitlines()}
        assert rows["commit"].startswith(head) and rows["mlflow run"].startswith(run_id)
        assert rows["reproduce"].startswith("python train.py trainer=smoke")
        assert rows["launch"].startswith("launcher local, world size 1, nodes 1")
        assert rows["registered"] == "models:/lin/1 (@champion)" and rows["attempts"] == "2"
        assert "config.yaml" in rows["artifacts"] and "lineage/attempt-2" in rows["artifacts"]
    code, out, _ = show("models:/lin@champion", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["model"]["version"] == "1" and shown["model"]["aliases"] == ["champion"]
    assert shown["run_id"] == run_id and shown["lineage"]["mlflow.source.git.commit"] == head
    assert show("models:/lin/1")[1].splitlines()[0] == "model        models:/lin/1 (@champion)"
    # A cluster job's run dir on the submitting machine: job.json, no tracking.json (the pods
    # wrote theirs on the outputs volume); its MLflow run is the one tagged with its run id.
    submitted = root / "elsewhere" / "k8s-run"
    submitted.mkdir(parents=True)
    (submitted / "job.json").write_text(json.dumps({"launcher": "k8s-job", "run_id": "run", "run_dir": str(submitted),
                                                    "kind": "Job", "name": "train-run", "namespace": "default"}))
    (submitted / "job.yaml").write_text("apiVersion: batch/v1\nkind: Job\n")
    code, out, _ = show(str(submitted))
    assert code == 0 and out.splitlines()[0].split()[2] == run_id
    assert f"manifest     {submitted / 'job.yaml'}" in out.splitlines()
    (submitted / "job.json").write_text(json.dumps({"launcher": "k8s-job", "run_id": "other", "run_dir": "x"}))
    code, _, err = show(str(submitted))
    assert code == 1 and "no MLflow run in sqlite:" in err and "is tagged aegis.run_id=other" in err
    code, _, err = show("models:/lin@nope")
    assert code == 1 and err.startswith("Error: Registered model 'lin' has no alias 'nope' in sqlite:")
    code, _, err = show("models:/lin@champion", "--tracking-uri", f"sqlite:///{root / 'none.db'}")
    assert code == 1 and "none.db does not exist" in err and not (root / "none.db").exists()


# ------------------------------------------------------------------- validation


def _sentences(compose, *overrides: str) -> list[str]:
    from aegis.config.validation import problems

    return problems(compose(*overrides)).sentences


@pytest.mark.parametrize("alias", ["latest", "v3", "my alias", "prod/1"])
def test_an_alias_mlflow_would_refuse_is_one_sentence_before_the_run(compose, alias):
    sentences = _sentences(compose, f"logger.registry_alias='{alias}'")
    assert len(sentences) == 1 and sentences[0].startswith(f"logger.registry_alias='{alias}' is invalid: expected "
                                                           "an MLflow model alias")


def test_an_alias_without_registration_is_refused(compose):
    assert _sentences(compose, "logger.registry_alias=champion", "logger.register_model=false") == [
        "logger.registry_alias=champion names an alias for the registered model version but "
        "logger.register_model=false registers none: expected logger.register_model=true or "
        "logger.registry_alias=null."]
    assert _sentences(compose, "logger.registry_alias=champion") == []


def test_system_metrics_without_psutil_names_the_extra(compose, monkeypatch):
    from aegis.config import host

    monkeypatch.setattr(host, "has_module", lambda name: name != "psutil")
    assert _sentences(compose, "logger.system_metrics=true") == [
        "logger.system_metrics=true needs psutil (MLflow's system metrics monitor reads CPU and memory through it), "
        "which is not installed here: expected pip install 'aegis[metrics]' or logger.system_metrics=false."]
    monkeypatch.setattr(host, "has_module", lambda name: True)
    assert _sentences(compose, "logger.system_metrics=true") == []


# ------------------------------------------------------------------- launchers


def test_a_torchrun_gang_passes_the_users_launch_to_its_ranks(compose, monkeypatch):
    from aegis.launch import get_launcher

    monkeypatch.delenv(lineage.LAUNCH_ENV, raising=False)
    overrides = ("strategy=ddp", "launcher=torchrun", "launcher.nproc_per_node=2", "model.lr=0.01")
    ctx = RunContext(run_dir=Path("/runs/x"), run_id="x", task_overrides=overrides, config_name="train",
                     entrypoint="/repo/train.py")
    plan = get_launcher("torchrun").render(compose(*overrides), ctx)
    origin = LaunchOrigin.from_env(plan.env[lineage.LAUNCH_ENV])
    assert origin == LaunchOrigin("torchrun", overrides, "train.py", "train")
    assert lineage.reproduce_command(origin) == ("python train.py strategy=ddp launcher=torchrun "
                                                 "launcher.nproc_per_node=2 model.lr=0.01")


@pytest.mark.slow
@needs_git
def test_a_torchrun_gang_run_is_tracked_with_its_launch_and_shown(tmp_path):
    """``python train.py strategy=ddp launcher=torchrun``: rank 0's lineage names torchrun,
    world size 2 and the command the user typed; ``aegis show`` prints it."""
    from mlflow.tracking import MlflowClient

    from helpers import REPO, run_dirs, run_train

    args = ["strategy=ddp", "launcher=torchrun", "launcher.nproc_per_node=2", "trainer=smoke",
            "trainer.max_epochs=1", "logger.register_model=false", "progress=none"]
    done = run_train(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = run_dirs(tmp_path)
    record = json.loads((run_dir / "tracking.json").read_text())
    tags = MlflowClient(record["tracking_uri"]).get_run(record["run_id"]).data.tags
    assert tags["aegis.launch.launcher"] == "torchrun" and tags["aegis.launch.world_size"] == "2"
    assert tags["aegis.reproduce"] == "python train.py " + " ".join(args)
    assert tags["mlflow.source.git.commit"] == _git(REPO, "rev-parse", "HEAD")
    import socket

    assert tags["aegis.launch.hosts"] == f"ranks 0-1 on {socket.gethostname()}"  # gathered from both ranks
    shown = subprocess.run([sys.executable, "-m", "aegis", "--root", str(tmp_path), "show", run_dir.name],
                           capture_output=True, text=True, cwd=REPO)
    assert shown.returncode == 0, shown.stderr
    assert "launcher torchrun, world size 2" in shown.stdout and "python train.py strategy=ddp" in shown.stdout
    assert f"ranks        ranks 0-1 on {socket.gethostname()}" in shown.stdout.splitlines()


@pytest.mark.slow  # MLflow's own monitor thread over a 3-epoch run; the config check: test_system_metrics_without_psutil_names_the_extra
def test_system_metrics_are_logged_to_the_run_by_mlflows_monitor(train_run, monkeypatch):
    pytest.importorskip("psutil")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    outcome, _ = train_run("trainer=smoke", "trainer.max_epochs=3", "logger.register_model=false",
                           "logger.log_checkpoint=false", "logger.system_metrics=true")
    tracking = outcome.summary["tracking"]
    run = MlflowClient(tracking["tracking_uri"]).get_run(tracking["run_id"])
    assert "system/cpu_utilization_percentage" in run.data.metrics
    assert "system/system_memory_usage_megabytes" in run.data.metrics
    assert run.info.status == "FINISHED"


def test_a_pods_env_carries_the_pinned_image_its_node_and_the_users_launch(compose, tmp_path, monkeypatch):
    """What rank 0 in a pod reads for its lineage, as the rendered PyTorchJob gives it: the
    image pinned to the digest docker/build.sh recorded, the node by the downward API."""
    pytest.importorskip("kubernetes_validate")
    from aegis.launch import get_launcher

    digest = "sha256:" + "cd" * 32
    records = tmp_path / "images.json"
    commit = "ef" * 20
    records.write_text(json.dumps({"reg.example.com/aegis:1.0": {"accelerator": "cpu", "digest": digest,
                                                                 "revision": commit, "dirty": False}}))
    monkeypatch.setenv("AEGIS_IMAGES_FILE", str(records))
    monkeypatch.delenv(lineage.LAUNCH_ENV, raising=False)
    overrides = ("strategy=ddp", "launcher=pytorchjob", "launcher.image=reg.example.com/aegis:1.0")
    ctx = RunContext(run_dir=tmp_path / "run", run_id="r1", task_overrides=overrides, config_name="train",
                     entrypoint=str(ROOT / "train.py"))
    plan = get_launcher("pytorchjob").render(compose(*overrides), ctx)
    for replica in plan.manifest["spec"]["pytorchReplicaSpecs"].values():
        env = replica["template"]["spec"]["containers"][0]["env"]
        values = {e["name"]: e.get("value") for e in env}
        assert {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in env
        seen = {**values, "NODE_NAME": "node-a"}  # what the kubelet fills in
        tags = lineage.launch_tags(lineage.origin_of("local", ctx, seen), 4, 2, seen)
        assert tags["aegis.image"] == f"reg.example.com/aegis:1.0@{digest}" and tags["aegis.image.digest"] == digest
        assert tags["aegis.launch.launcher"] == "pytorchjob" and tags["aegis.launch.node_name"] == "node-a"
        origin = LaunchOrigin.from_env(values[lineage.LAUNCH_ENV])
        assert lineage.reproduce_command(origin) == "python train.py " + " ".join(overrides)
        # The image has no .git: its code is the commit docker/build.sh recorded for it.
        code = lineage.code_tags(tmp_path / "not-a-checkout" / "train.py", seen)
        assert code[lineage.GIT_COMMIT] == commit and code[lineage.GIT_DIRTY] == "false"
        assert code[lineage.GIT_FROM] == "the image's build record (docker/build.sh)"


def test_aegis_show_never_imports_torch_or_lightning(tmp_path):
    """A fresh interpreter: ``aegis show`` of a real MLflow run and registered version."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("e", artifact_location=(tmp_path / "art").as_uri()),
                            tags={lineage.GIT_COMMIT: "ab" * 20, lineage.REPRODUCE: "python train.py"})
    client.create_registered_model("m")
    client.create_model_version("m", "runs:/x/model", run_id=run.info.run_id)
    client.set_registered_model_alias("m", "champion", "1")
    probe = ("import sys; from aegis.commands import main; "
             f"codes = [main(['--root', {str(tmp_path)!r}, 'show', t, '--tracking-uri', {uri!r}]) "
             f"for t in ({run.info.run_id!r}, 'models:/m@champion')]; "
             "print(codes, sorted(m for m in ('torch', 'lightning') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "[0, 0] []"
    assert "reproduce    python train.py" in done.stdout and "model        models:/m/1 (@champion)" in done.stdout
