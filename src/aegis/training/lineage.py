"""What produced a run: code, config, launch, data and environment, as plain data.

A model in the registry should be traceable to the commit, the config, the command, the
image and the dataset that made it. This module only *collects* those facts (tags and the
text of artifacts); ``aegis.training.lineage_store`` writes them to the MLflow run and to a
registered version. Nothing here imports MLflow or torch (torch's CUDA version is read
only when training already imported it), and nothing here can fail a run: git missing, a
slow git, or a folder that is not a checkout become a tag that says so.

Tag names follow MLflow's own (``mlflow.source.git.commit`` ...), which Lightning's
MLFlowLogger does not set because it opens runs without MLflow's fluent API; everything
else is ``aegis.*``.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from aegis.core.context import override_key
from aegis.core.launch_origin import (IMAGE_COMMIT_ENV, IMAGE_DIRTY_ENV, IMAGE_ENV,  # noqa: F401
                                       LAUNCH_ENV, NODE_NAME_ENV, LaunchOrigin, launch_env)

# MLflow's standard tags (mlflow.utils.mlflow_tags), spelled out: importing MLflow costs seconds.
GIT_COMMIT = "mlflow.source.git.commit"
GIT_BRANCH = "mlflow.source.git.branch"
GIT_REPO_URL = "mlflow.source.git.repoURL"
SOURCE_NAME = "mlflow.source.name"
SOURCE_TYPE = "mlflow.source.type"
GIT_DIRTY = "aegis.git.dirty"
GIT_STATE = "aegis.git"  # only where there is no commit to name: why
REPRODUCE = "aegis.reproduce"
ATTEMPTS = "aegis.lineage.attempts"
CHANGED = "aegis.lineage.changed"
GIT_FROM = "aegis.git.from"
GIT_TIMEOUT_S = 5.0
MAX_TAG_VALUE = 5000  # MLflow's limit is 8000 characters; a long command is cut with a note
# Keys that name the run, not what it computes: left out of the reproduce command.
RUN_IDENTITY_KEYS = ("run_id", "hydra.run.dir", "hydra.sweep.dir")
# The prefixes of every lineage tag (what a registered version copies from its run).
LINEAGE_PREFIXES = ("mlflow.source.", "aegis.git", "aegis.reproduce", "aegis.launch.", "aegis.data.", "aegis.env.",
                    "aegis.image", "aegis.run_id", "aegis.run_dir")
_DIGEST = re.compile(r"@(sha256:[0-9a-f]{64})$")
_URL_USERINFO = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@]*@", re.IGNORECASE)


@dataclass(frozen=True)
class Lineage:
    """One attempt's lineage: run tags and artifacts (relative path -> text)."""

    tags: dict[str, str]
    files: dict[str, str] = field(default_factory=dict)


def reproduce_command(origin: LaunchOrigin) -> str:
    """``python train.py ...`` that runs the same config again, as a new run."""
    args = [] if origin.config_name == "train" else [f"--config-name={origin.config_name}"]
    args += [o for o in origin.overrides if override_key(o) not in RUN_IDENTITY_KEYS]
    return " ".join(["python", origin.entrypoint, *(shlex.quote(a) for a in args)])


def strip_userinfo(url: str) -> str:
    """A remote URL without user and password (``https://tok@github.com/x`` -> ``https://github.com/x``);
    scp-style ``git@host:path`` has no secret and is kept."""
    return _URL_USERINFO.sub(lambda m: m.group("scheme"), url.strip())


def _git(args: Sequence[str], cwd: Path, timeout: float) -> Optional[str]:
    """stdout of ``git args`` in ``cwd``, or None when it failed, timed out, or git is missing."""
    import subprocess
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"})
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_tags(where: Path, timeout: float = GIT_TIMEOUT_S) -> dict[str, str]:
    """Commit, branch, remote and dirty flag of the checkout holding ``where``; or, where
    there is none (or git is missing or too slow), ``aegis.git`` saying so.

    Two git calls: ``status --porcelain=v2 --branch`` gives commit, branch and changes at
    once. Dirty means a tracked file differs from the commit (untracked files are not
    counted: outputs, notes and caches would make every run dirty)."""
    where = where if where.is_dir() else where.parent
    if not where.is_dir():
        return {GIT_STATE: "not a git checkout"}
    status = _git(["status", "--porcelain=v2", "--branch", "--untracked-files=no"], where, timeout)
    if status is None:
        known = _git(["--version"], where, timeout) is not None
        return {GIT_STATE: "not a git checkout" if known else "git is not installed (or did not answer)"}
    tags: dict[str, str] = {}
    dirty = False
    for line in status.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.split(" ", 2)[2].strip()
            if oid != "(initial)":
                tags[GIT_COMMIT] = oid
        elif line.startswith("# branch.head "):
            head = line.split(" ", 2)[2].strip()
            if head != "(detached)":
                tags[GIT_BRANCH] = head
        elif line and not line.startswith("#"):
            dirty = True
    if GIT_COMMIT not in tags:
        return {GIT_STATE: "a git checkout without a commit", GIT_DIRTY: "true"}
    tags[GIT_DIRTY] = "true" if dirty else "false"
    remote = _git(["config", "--get", "remote.origin.url"], where, timeout)
    if remote and remote.strip():
        tags[GIT_REPO_URL] = strip_userinfo(remote)
    return tags


def code_tags(entrypoint: Path, env: Mapping[str, str]) -> dict[str, str]:
    """The checkout's git facts; where there is none (an image), the commit its build
    recorded, passed to the pod in its env."""
    tags = git_tags(entrypoint)
    if GIT_COMMIT in tags or not env.get(IMAGE_COMMIT_ENV):
        return tags
    return {GIT_COMMIT: env[IMAGE_COMMIT_ENV], GIT_DIRTY: env.get(IMAGE_DIRTY_ENV) or "unknown",
            GIT_FROM: "the image's build record (docker/build.sh)"}


def _version(package: str) -> Optional[str]:
    from importlib import metadata
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment_tags() -> dict[str, str]:
    """Python, torch, lightning, MLflow and CUDA versions (CUDA only as torch was built, and
    only when training already imported torch: collecting never imports it)."""
    import platform

    tags = {"aegis.env.python": platform.python_version(), "aegis.env.platform": platform.platform(terse=True)}
    for package, key in (("torch", "torch"), ("lightning", "lightning"), ("mlflow-skinny", "mlflow"),
                         ("aegis", "aegis")):
        version = _version(package)
        if version:
            tags[f"aegis.env.{key}"] = version
    torch = sys.modules.get("torch")
    if torch is not None:
        tags["aegis.env.torch"] = str(torch.__version__)
        tags["aegis.env.cuda"] = str(getattr(torch.version, "cuda", None) or "none (CPU build)")
        try:
            if torch.cuda.is_available():
                tags["aegis.env.gpu"] = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
        except Exception:  # a broken driver must not fail the run's bookkeeping
            pass
    return tags


def launch_tags(origin: LaunchOrigin, world_size: Optional[int], num_nodes: Optional[int],
                env: Mapping[str, str]) -> dict[str, str]:
    """Launcher, world size, nodes, the host (and a pod's node) of rank 0, the image."""
    import socket

    tags = {"aegis.launch.launcher": origin.launcher, "aegis.launch.host": socket.gethostname()}
    if world_size is not None:
        tags["aegis.launch.world_size"] = str(world_size)
    if num_nodes is not None:
        tags["aegis.launch.nodes"] = str(num_nodes)
    if env.get(NODE_NAME_ENV):
        tags["aegis.launch.node_name"] = env[NODE_NAME_ENV]
    if env.get("SLURM_JOB_ID"):  # a SLURM job: which one, on which cluster (scontrol/sacct find it)
        tags["aegis.launch.slurm.job_id"] = env["SLURM_JOB_ID"]
        if env.get("SLURM_CLUSTER_NAME"):
            tags["aegis.launch.slurm.cluster"] = env["SLURM_CLUSTER_NAME"]
    image = env.get(IMAGE_ENV)
    if image:
        tags["aegis.image"] = image
        digest = _DIGEST.search(image)
        if digest:
            tags["aegis.image.digest"] = digest.group(1)
    return tags


def data_tags(data: Mapping[str, Any]) -> dict[str, str]:
    """The dataset: its source URI and sha256 as the dataset cache recorded them when it was
    fetched; for built-in data, the data module that makes it."""
    source = data.get("source")
    if not source:
        target = data.get("_target_")
        return {"aegis.data.module": str(target)} if target else {}
    tags = {"aegis.data.source": strip_userinfo(str(source))}
    meta = _cache_meta(data)
    if meta is not None:
        if meta.get("source"):
            tags["aegis.data.source"] = str(meta["source"])
        if meta.get("sha256"):
            tags["aegis.data.sha256"] = str(meta["sha256"])
        tags["aegis.data.sha256_pinned"] = "true" if meta.get("sha256_pinned") else "false"
    elif data.get("sha256"):
        tags["aegis.data.sha256"] = str(data["sha256"])
    return tags


def _cache_meta(data: Mapping[str, Any]) -> Optional[dict[str, Any]]:
    """The cache entry's record of this data (kind from the data module's KIND), or None."""
    try:
        from hydra.utils import get_class

        from aegis.data.cache import Cache
        from aegis.data.spec import spec_from_config

        kind = getattr(get_class(str(data["_target_"])), "KIND", "")
        spec = spec_from_config(dict(data), kind)
        entry = Cache(data["cache_dir"]).get(spec.entry_name)
    except Exception:  # lineage never fails a run; the source URI alone is still recorded
        return None
    return dict(entry.meta) if entry is not None else None


def collect(*, config: Mapping[str, Any], config_yaml: str, origin: LaunchOrigin, entrypoint: str,
            world_size: Optional[int] = None, num_nodes: Optional[int] = None,
            env: Optional[Mapping[str, str]] = None) -> Lineage:
    """Every lineage tag and artifact of one attempt. ``config`` is the resolved config;
    ``entrypoint`` the script that runs (its checkout is the code's). The run's id and dir
    are tagged by tracking itself (``aegis.run_id``, ``aegis.run_dir``)."""
    env = os.environ if env is None else env
    command = reproduce_command(origin)
    if len(command) > MAX_TAG_VALUE:
        command = command[: MAX_TAG_VALUE - 60] + " ... (cut; the whole command: overrides.yaml)"
    in_cluster = bool(env.get(IMAGE_ENV) or env.get("KUBERNETES_SERVICE_HOST"))
    tags = {SOURCE_NAME: entrypoint, SOURCE_TYPE: "JOB" if in_cluster else "LOCAL",
            **code_tags(Path(entrypoint), env), REPRODUCE: command,
            **launch_tags(origin, world_size, num_nodes, env),
            **data_tags(config.get("data") or {}),
            **environment_tags()}
    overrides = {"launcher": origin.launcher, "config_name": origin.config_name,
                 "overrides": list(origin.overrides), "command": reproduce_command(origin)}
    return Lineage(tags, {"config.yaml": config_yaml, "overrides.yaml": _yaml(overrides)})


def lineage_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """The lineage among a run's tags (what a registered version carries)."""
    return {k: v for k, v in tags.items() if k.startswith(LINEAGE_PREFIXES) or k in (ATTEMPTS, CHANGED)}


def _yaml(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, sort_keys=False)


def origin_of(launcher: str, ctx: Any, env: Mapping[str, str]) -> LaunchOrigin:
    """The launch as the user asked for it: what a parent launcher passed down in
    ``$AEGIS_LAUNCH``, else this process's own launcher and overrides."""
    passed = LaunchOrigin.from_env(env.get(LAUNCH_ENV))
    if passed is not None:
        return passed
    return LaunchOrigin(launcher, tuple(ctx.task_overrides), Path(ctx.entrypoint).name, ctx.config_name)


def for_attempt(cfg: Any, ctx: Any, world_size: Optional[int], num_nodes: Optional[int]) -> Lineage:
    """This attempt's lineage from the composed config (its ``config.yaml`` as rank 0 saved it
    in the run dir) and the run's context."""
    from omegaconf import OmegaConf

    config_file = Path(ctx.run_dir) / "config.yaml"
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    try:
        config_yaml = config_file.read_text()
    except OSError:
        config_yaml = OmegaConf.to_yaml(OmegaConf.create(config))
    return collect(config=config, config_yaml=config_yaml, origin=origin_of(str(cfg.launcher.name), ctx, os.environ),
                   entrypoint=str(ctx.entrypoint), world_size=world_size, num_nodes=num_nodes)


HOSTS = "aegis.launch.hosts"


def hosts_tag(ranks: Sequence[Mapping[str, Any]]) -> str:
    """Where every rank ran, in rank order, consecutive ranks on one host folded:
    ``ranks 0-3 on gpu-a (node n1); ranks 4-7 on gpu-b (node n2)``."""
    groups: list[tuple[int, int, str]] = []
    for rank, where in enumerate(ranks):
        place = str(where.get("host") or "?") + (f" (node {where['node']})" if where.get("node") else "")
        if groups and groups[-1][2] == place and groups[-1][1] == rank - 1:
            groups[-1] = (groups[-1][0], rank, place)
        else:
            groups.append((rank, rank, place))
    return "; ".join(f"rank {a} on {p}" if a == b else f"ranks {a}-{b} on {p}" for a, b, p in groups)


def this_host(env: Optional[Mapping[str, str]] = None) -> dict[str, Optional[str]]:
    """This process's host and, in a pod, its node."""
    import socket

    env = os.environ if env is None else env
    return {"host": socket.gethostname(), "node": env.get(NODE_NAME_ENV) or None}
