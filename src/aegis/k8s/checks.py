"""Config rules every Kubernetes launcher shares, that types and ranges cannot say (each
launcher adds its own in its folder: the object's name rules, a gang's shape).

Called from ``aegis.config.validation`` (before Hydra creates a run dir) so a bad
image, quantity or name is one sentence naming the key and nothing exists yet. The checks
collect: each adds its sentences to the pass's ``Problems`` and goes on, so a bad image
and a bad quantity are both reported.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any, Iterator, Optional

from omegaconf import DictConfig, OmegaConf

from aegis.errors import Problems
from aegis.core import quantities
from aegis.k8s import builds, images, kueue, naming, prefetch
from aegis.redact import find_credential, is_credential_name, mask_credentials

_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
# An interpolation that reads the submitting machine's environment (${oc.env:X}, legacy ${env:X}).
_HOST_ENV = re.compile(r"\$\{\s*(oc\.env|env)\s*:")

# Node directories a pod must never mount (hostPath): the node's configuration and kernel
# interfaces, and where container runtimes keep their sockets and state (a pod that reaches
# docker.sock or containerd.sock runs anything as root on the node). A parent of one (``/``,
# ``/var``) exposes it as well.
_NODE_SYSTEM_DIRS = ("/etc", "/proc", "/sys", "/dev", "/boot", "/root", "/run", "/var/run", "/var/lib/docker",
                     "/var/lib/containerd", "/var/lib/kubelet", "/var/lib/crio", "/usr", "/bin", "/sbin", "/lib",
                     "/lib64")
_RUNTIME_DIRS = ("/run/containerd", "/var/run/containerd", "/run/crio", "/var/run/crio", "/run/docker.sock",
                 "/var/run/docker.sock", "/run/docker", "/var/run/docker", "/var/lib/docker", "/var/lib/containerd",
                 "/var/lib/crio")
# Where the image keeps what runs (docker/Dockerfile.training): a volume mounted there hides it.
_IMAGE_CODE_DIR = "/app"  # the WORKDIR: train.py, conf/ (launcher.working_dir moves it)
_IMAGE_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc", "/proc", "/sys", "/dev", "/opt/venv", "/run",
               "/var/run")
# Labels and annotations by which Aegis (and its follower, status and cancel) finds a job and
# its pods (aegis.k8s.pod.labels/annotations): a launcher.labels entry must not replace them.
_IDENTITY_PREFIXES = ("aegis.dev/",)
_IDENTITY_KEYS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
                  "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by", "app.kubernetes.io/version")
# Annotations that switch a container's confinement off.
_CONFINEMENT = ("apparmor.security.beta.kubernetes.io", "seccomp.security.alpha.kubernetes.io")


def _unresolved_strings(value: Any, key: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for name, item in value.items():
            yield from _unresolved_strings(item, f"{key}.{name}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _unresolved_strings(item, f"{key}[{i}]")
    elif isinstance(value, str):
        yield key, value


def _collect(check: Any, cfg: DictConfig, found: Optional[Problems]) -> list[str]:
    found = Problems() if found is None else found
    before = len(found.sentences)
    check(cfg, found)
    return found.sentences[before:]


def check_unresolved(cfg: DictConfig, found: Optional[Problems] = None) -> list[str]:
    """The sentences (added to ``found`` too) of each ``${oc.env:...}`` under ``launcher``."""
    return _collect(_unresolved, cfg, found)


def _unresolved(cfg: DictConfig, found: Problems) -> None:
    """Refuse ``${oc.env:...}`` anywhere under ``launcher``, read without resolving it.

    Everything under ``launcher`` ends up in the manifest: resolving the interpolation
    here would copy this machine's environment (often a credential) into a cluster
    object, and print it. Secrets reach pods through ``launcher.secret_env``.
    """
    tree = OmegaConf.to_container(cfg.launcher, resolve=False)
    for key, text in _unresolved_strings(tree, "launcher"):
        if _HOST_ENV.search(text):
            name = key.rpartition(".")[2] if key.startswith("launcher.env.") else "NAME"
            found.add(
                f"{key}={text!r} would copy this machine's environment into the manifest: expected a literal "
                f"value, or a Secret key through +launcher.secret_env.{name}=<secret name>/<key>.", key
            )


def _image(launcher: DictConfig, found: Problems) -> None:
    if found.refused("launcher.image"):
        return
    image = launcher.image
    if image is None or str(image).strip() == "":
        found.add(
            f"launcher.image is required for launcher={launcher.name}: build the image with docker/build.sh, push "
            "it to a registry the cluster pulls from, and set launcher.image=<registry>/<repo>:<tag> (or "
            "<registry>/<repo>@sha256:<digest>), e.g. ghcr.io/acme/aegis:0.1.0.",
            "launcher.image",
        )
        return
    why = images.problem(str(image))
    if why:
        found.add(
            f"launcher.image={image!r} {why}: expected <registry>/<repo>:<tag> or <registry>/<repo>@sha256:<digest>, "
            "e.g. ghcr.io/acme/aegis:0.1.0.", "launcher.image"
        )
        return
    if images.registry(str(image)) is None and not launcher.allow_unqualified_image:
        found.add(
            f"launcher.image={image!r} names no registry host, so the cluster would pull it from Docker Hub "
            f"(docker.io/{'' if '/' in str(image) else 'library/'}{image}): expected <registry>/<repo>:<tag>, e.g. "
            "ghcr.io/acme/aegis:0.1.0, or launcher.allow_unqualified_image=true for an image loaded onto the "
            "nodes (kind load docker-image, minikube image load).", "launcher.image"
        )


def _accelerator(launcher: DictConfig, found: Problems) -> None:
    """A GPU request with an image docker/build.sh recorded as built without CUDA: the pod
    would hold the GPU and train on the CPU."""
    gpu = launcher.resources.gpu
    if not gpu or found.refused("launcher.image", "launcher.resources.gpu"):
        return
    build = builds.lookup(launcher.image)
    if build is not None and build.accelerator == "cpu":
        found.add(
            f"launcher.resources.gpu={gpu} asks for GPUs but launcher.image={launcher.image} was built without CUDA "
            f"(docker/build.sh recorded accelerator cpu in {builds.records_file()}): expected an image built with "
            "docker/build.sh --cuda, or launcher.resources.gpu=0.", "launcher.resources.gpu", "launcher.image"
        )


def _quantities(launcher: DictConfig, found: Problems) -> None:
    res = launcher.resources
    for key in ("cpu", "memory", "cpu_limit", "memory_limit", "ephemeral_storage"):
        value = res[key]
        if found.refused(f"launcher.resources.{key}"):
            continue
        if value is not None and not quantities.is_quantity(value):
            example = "2, 500m, 1.5" if key.startswith("cpu") else "512Mi, 4Gi, 1G"
            found.add(
                f"launcher.resources.{key}={value!r} is not a Kubernetes quantity: expected e.g. {example}.",
                f"launcher.resources.{key}",
            )
    for request, limit in (("cpu", "cpu_limit"), ("memory", "memory_limit")):
        if found.refused(f"launcher.resources.{request}", f"launcher.resources.{limit}"):
            continue  # a value that is not a quantity has no size to compare
        if res[request] is not None and res[limit] is not None:
            if quantities.parse(res[limit]) < quantities.parse(res[request]):
                found.add(
                    f"launcher.resources.{limit}={res[limit]!r} is below launcher.resources.{request}="
                    f"{res[request]!r}: a limit must be at least its request.", f"launcher.resources.{limit}"
                )
    if launcher.shm_size is not None and not found.refused("launcher.shm_size") \
            and not quantities.is_quantity(launcher.shm_size):
        found.add(
            f"launcher.shm_size={launcher.shm_size!r} is not a Kubernetes quantity: expected e.g. 1Gi, 512Mi, or null for no /dev/shm volume.",
            "launcher.shm_size",
        )
    _shm_within_memory(launcher, found)


def _shm_within_memory(launcher: DictConfig, found: Problems) -> None:
    """/dev/shm is a memory-backed emptyDir: what DataLoader workers put there counts against
    the container's memory limit, so a shm as large as the limit leaves training nothing."""
    res = launcher.resources
    limit_key = "memory_limit" if res.memory_limit is not None else "memory"
    limit = res[limit_key]
    if launcher.shm_size is None or limit is None \
            or found.refused("launcher.shm_size", f"launcher.resources.{limit_key}"):
        return
    shm, memory = quantities.parse(launcher.shm_size), quantities.parse(limit)
    if shm is None or memory is None or shm * 2 <= memory:
        return
    found.add(
        f"launcher.shm_size={launcher.shm_size!r} is more than half of the memory limit "
        f"launcher.resources.{limit_key}={limit!r}, and /dev/shm counts against that limit: expected "
        f"launcher.shm_size at most {_half(limit)}, or a larger launcher.resources.{limit_key}.",
        "launcher.shm_size",
    )


def _half(limit: str) -> str:
    """Half of a memory quantity, in the largest binary unit that keeps it whole."""
    value = quantities.parse(limit)
    half = int(value // 2) if value is not None else 0
    for suffix, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if half >= size and half % size == 0:
            return f"{half // size}{suffix}"
    return str(half)


def _names(launcher: DictConfig, found: Problems) -> None:
    if not naming.is_dns_1123_label(launcher.namespace):
        found.add(
            f"launcher.namespace={launcher.namespace!r} is not a valid namespace: expected a DNS-1123 label "
            "(lowercase letters, digits and '-', at most 63 characters)."
        )
    for key in ("service_account",):
        value = launcher[key]
        if value is not None and not naming.is_dns_1123_subdomain(value):
            found.add(f"launcher.{key}={value!r} is not a valid object name: expected a DNS-1123 subdomain.")
    for key in ("image_pull_secrets", "env_from"):
        for i, value in enumerate(launcher[key]):
            if not naming.is_dns_1123_subdomain(value):
                found.add(f"launcher.{key}[{i}]={value!r} is not a valid Secret name: expected a DNS-1123 subdomain.")
    for key, volume in (("outputs", launcher.outputs), ("dataset_cache", launcher.dataset_cache)):
        claim = volume.claim
        if claim is not None and not naming.is_dns_1123_subdomain(claim):
            found.add(
                f"launcher.{key}.claim={claim!r} is not a valid PersistentVolumeClaim name: expected a DNS-1123 subdomain."
            )
        if not str(volume.mount_path).startswith("/"):
            found.add(
                f"launcher.{key}.mount_path={volume.mount_path!r} is relative: it must be an absolute path in the "
                "container, e.g. /outputs."
            )
    if launcher.outputs.claim is not None and launcher.outputs.host_path is not None:
        found.add(
            "launcher.outputs.claim and launcher.outputs.host_path are both set: choose one (set the other to null)."
        )
    _host_path(launcher, found)
    _mount_paths(launcher, found)
    _identity(launcher, found)
    for group, mapping in (("labels", launcher.labels), ("annotations", launcher.annotations),
                           ("node_selector", launcher.node_selector)):
        for key, value in mapping.items():
            if not naming.is_label_key(key):
                found.add(
                    f"launcher.{group} key {key!r} is not a valid Kubernetes label key: expected [prefix/]name, the "
                    "name at most 63 letters, digits, '-', '_' and '.', e.g. example.com/team."
                )
            if group != "annotations" and not naming.is_label_value(str(value)):
                found.add(
                    f"launcher.{group}.{key}={value!r} is not a valid label value: at most 63 characters of "
                    "letters, digits, '-', '_' and '.', starting and ending with a letter or digit."
                )


def _normal(path: str) -> str:
    """``path`` as the node or container resolves it: ``//etc/./`` is ``/etc``."""
    return posixpath.normpath("/" + str(path).lstrip("/"))


def _within(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def _host_path(launcher: DictConfig, found: Problems) -> None:
    outputs = launcher.outputs
    if outputs.host_path is None or outputs.claim is not None:  # both set: one sentence already says choose one
        return
    key = "launcher.outputs.host_path"
    shown = f"{key}={outputs.host_path!r}"
    if not outputs.get("allow_host_path"):
        found.add(f"{shown} mounts a directory of the node read-write into every pod, which is refused unless "
                  "launcher.outputs.allow_host_path=true (for a one-node kind/minikube cluster); elsewhere use "
                  "launcher.outputs.claim.", key)
        return
    if not str(outputs.host_path).startswith("/"):
        found.add(f"{shown} is relative: expected an absolute directory of the node, e.g. /mnt/aegis-outputs.", key)
        return
    path = _normal(outputs.host_path)
    if path.endswith(".sock") or any(_within(path, d) for d in _RUNTIME_DIRS):
        found.add(f"{shown} is a container runtime's socket or state on the node, which would give the pod control "
                  "of the node: expected a directory of its own for run outputs, e.g. /mnt/aegis-outputs.", key)
        return
    for system in _NODE_SYSTEM_DIRS:
        if _within(path, system) or _within(system, path):
            what = "the node's root" if path == "/" else f"the node's {system}"
            found.add(f"{shown} would give the pod {what} to read and write: expected a directory of its own for run "
                      "outputs outside /etc, /proc, /sys, /dev, /run, /var/run and the system directories, e.g. "
                      "/mnt/aegis-outputs.", key)
            return


def _mount_paths(launcher: DictConfig, found: Problems) -> None:
    """A volume mounted over the image's code (its WORKDIR, the venv, the system) replaces it:
    the pod would run without train.py or Python."""
    code = _normal(launcher.working_dir or _IMAGE_CODE_DIR)
    for name in ("outputs", "dataset_cache"):
        mount = str(launcher[name].mount_path)
        if not mount.startswith("/"):
            continue  # said in _names
        path = _normal(mount)
        key = f"launcher.{name}.mount_path"
        hides = next((d for d in (code, *_IMAGE_DIRS) if _within(d, path)), None)  # a parent of the code, or it
        if hides is None:
            hides = next((d for d in _IMAGE_DIRS if _within(path, d)), None)
        if hides is None and _within(path, code) and not _within(path, posixpath.join(code, "outputs")):
            hides = code
        if hides is not None:
            found.add(f"{key}={mount!r} would hide the image's {hides} (its code, Python or system files) under the "
                      f"volume: expected a directory of its own, e.g. /{'outputs' if name == 'outputs' else 'data'}.",
                      key)


def _identity(launcher: DictConfig, found: Problems) -> None:
    for group in ("labels", "annotations"):
        for key, value in launcher[group].items():
            key = str(key)
            if key.startswith(_IDENTITY_PREFIXES) or key in _IDENTITY_KEYS:
                found.add(f"launcher.{group} key {key!r} is one Aegis sets to find the job and its pods, so it cannot "
                          f"be set here: expected a key of your own, e.g. example.com/team.", f"launcher.{group}")
            elif any(part in key for part in _CONFINEMENT) and str(value).strip().lower() == "unconfined":
                found.add(f"launcher.annotations.{key}={value!r} would run the container without AppArmor/seccomp "
                          "confinement: expected runtime/default or a localhost/<profile> (or no such annotation).",
                          "launcher.annotations")


def _env(launcher: DictConfig, found: Problems) -> None:
    """Literal env goes into the manifest in clear, where anyone who can read the Job reads
    it: a credential-named variable, or a value that carries a credential (a URL with a
    password, ``password=``, a token's shape), belongs in a Secret (``launcher.secret_env``)."""
    for key, value in launcher.env.items():
        if not _ENV_NAME.fullmatch(key):
            found.add(
                f"launcher.env.{key} is not a valid environment variable name: expected letters, digits, '_', '-' "
                "and '.', not starting with a digit.", f"launcher.env.{key}"
            )
        if is_credential_name(key):
            found.add(
                f"launcher.env.{key} looks like a credential and would be written into the manifest in clear: "
                f"put it in a Secret and set +launcher.secret_env.{key}=<secret name>/<key> instead.",
                f"launcher.env.{key}"
            )
        elif (what := find_credential(value)) is not None:
            found.add(f"launcher.env.{key}={mask_credentials(value)!r} carries {what}, which would be written into "
                      f"the manifest in clear: {_secret_instead(key)}.", f"launcher.env.{key}")
    for key, ref in launcher.secret_env.items():
        if not _ENV_NAME.fullmatch(key):
            found.add(
                f"launcher.secret_env.{key} is not a valid environment variable name: expected letters, digits, "
                "'_', '-' and '.', not starting with a digit.", f"launcher.secret_env.{key}"
            )
        secret, slash, secret_key = str(ref).partition("/")
        if not naming.is_dns_1123_subdomain(secret) or not re.fullmatch(r"[-._a-zA-Z0-9]+", secret_key):
            # Without a '/' the value is likely the secret itself, given here by mistake: not shown.
            shown = f"={mask_credentials(ref)!r}" if slash else " (value not shown: it may be the secret itself)"
            found.add(
                f"launcher.secret_env.{key}{shown} is not a Secret key reference: expected <secret name>/<key>, "
                "e.g. mlflow/token.", f"launcher.secret_env.{key}"
            )


def _secret_instead(key: str) -> str:
    """What to do instead of a credential in ``launcher.env.<key>``: the secret from a Secret."""
    whole = f"or the whole value from a Secret: +launcher.secret_env.{key}=<secret name>/<key>"
    if key == "MLFLOW_TRACKING_URI":
        return ("expected the URI without them, with +launcher.secret_env.MLFLOW_TRACKING_USERNAME=<secret name>/<key> "
                f"and +launcher.secret_env.MLFLOW_TRACKING_PASSWORD=<secret name>/<key>, {whole}")
    return f"expected the value without the credential, {whole}"


def _tolerations(launcher: DictConfig, found: Problems) -> None:
    for i, tol in enumerate(launcher.tolerations):
        key = f"launcher.tolerations[{i}]"
        if tol.operator not in ("Equal", "Exists"):
            found.add(f"{key}.operator={tol.operator!r} is invalid: expected 'Equal' or 'Exists'.")
        if tol.effect not in (None, "NoSchedule", "PreferNoSchedule", "NoExecute"):
            found.add(
                f"{key}.effect={tol.effect!r} is invalid: expected NoSchedule, PreferNoSchedule, NoExecute or null."
            )
        if tol.operator == "Exists" and tol.value is not None:
            found.add(f"{key}.value must be null when {key}.operator is Exists: expected no value, or operator Equal.")
        if tol.operator == "Equal" and tol.key is None:
            found.add(f"{key}.key is required when {key}.operator is Equal: expected a taint key, or operator Exists.")
        if tol.toleration_seconds is not None and tol.effect != "NoExecute":
            found.add(
                f"{key}.toleration_seconds applies only with effect NoExecute: expected null, or "
                f"{key}.effect=NoExecute."
            )


def check_config(cfg: DictConfig, found: Optional[Problems] = None) -> list[str]:
    """The sentences (added to ``found`` too) of every Kubernetes-launcher problem in ``cfg``."""
    return _collect(_check_config, cfg, found)


def _check_config(cfg: DictConfig, found: Problems) -> None:
    launcher = cfg.launcher
    _image(launcher, found)
    _quantities(launcher, found)
    _accelerator(launcher, found)
    _names(launcher, found)
    _env(launcher, found)
    _tolerations(launcher, found)
    prefetch.check(cfg, found)
    kueue.check(cfg, found)
    if cfg.launcher.get("server_dry_run") and cfg.launcher.get("dry_run"):
        found.add(
            "launcher.dry_run=true and launcher.server_dry_run=true are both set: dry_run contacts no cluster, "
            "server_dry_run asks the API server to check without creating; choose one."
        )


def check_gang_shape(cfg: DictConfig, found: Problems) -> None:
    """What every multi-node launcher (pytorchjob, trainjob) asks of its gang: one process per
    GPU at most, and a DDP strategy whose node count, when set, is the launcher's."""
    launcher = cfg.launcher
    gpus = launcher.resources.gpu
    if gpus and not found.refused("launcher.resources.gpu", "launcher.nproc_per_node") and launcher.nproc_per_node > gpus:
        found.add(
            f"launcher.nproc_per_node={launcher.nproc_per_node} exceeds launcher.resources.gpu={gpus}: "
            "run one process per GPU (set launcher.nproc_per_node to at most the GPUs per pod)."
        )
    strategy = cfg.strategy
    if strategy.name == "ddp" and not found.refused("launcher.nodes", "strategy.num_nodes") \
            and strategy.get("num_nodes") not in (None, launcher.nodes):
        found.add(
            f"strategy.num_nodes={strategy.num_nodes} disagrees with launcher.nodes={launcher.nodes}: "
            "leave strategy.num_nodes null to read it from torchrun."
        )
