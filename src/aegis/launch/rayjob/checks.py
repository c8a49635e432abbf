"""Rules of ``launcher=rayjob`` beyond the shared Kubernetes ones, one sentence each, before
anything is rendered: a search must be selected (a RayJob runs one), the sweeper's address is
the launcher's, the RayJob name KubeRay accepts, a /dev/shm that holds Ray's object store, an
image with Ray in it (where docker/build.sh recorded the build) whose Ray version is known, and the
shared keys a RayJob has no use for."""

from __future__ import annotations

import re
from typing import Any, Optional

from omegaconf import DictConfig

from aegis.errors import Problems
from aegis.core import quantities
from aegis.k8s import builds, naming
from aegis.launch.rayjob.kind import MAX_NAME_LENGTH
from aegis.launch.rayjob.render import OBJECT_STORE_MINIMUM, OBJECT_STORE_SHARE, object_store_bytes, ray_version

RAY_TUNE_SWEEPER = "hydra_plugins.aegis_ray_tune.ray_tune_sweeper.RayTuneSweeper"
# The optional groups (pyproject.toml) a RayJob's image needs: Ray Tune for the search, and
# ray[default] for the head's dashboard, through which KubeRay submits the entrypoint.
RAY_EXTRAS = ("tune", "kuberay")
# KubeRay v1.7.0 (ray-operator/controllers/ray/common/pod.go, supportsUnifiedHealthCheck) injects
# an HTTP probe (GET /api/healthz on the dashboard agent) for rayVersion >= 2.53.0, and otherwise
# exec probes running `wget ... | grep success` (utils/constant.go), which the image cannot run.
HTTP_PROBES_FROM = (2, 53, 0)
# The Ray pods' preStop hook (aegis.tune.prestop) runs within terminationGracePeriodSeconds: Ray
# Tune saving the search and stopping its trials (a few seconds), the driver waiting for trials on
# other nodes to leave their record (aegis.tune.outcomes.WORKER_EXIT_WAIT_S, 15 s), the MLflow
# updates, and the hook's margin for Ray's own shutdown (SHUTDOWN_MARGIN_S, 5 s); measured in the
# container tier (tests/container/test_rayjob_probes.py).
MIN_GRACE_S = 45


def _hydra(cfg: DictConfig) -> Optional[Any]:
    from aegis.config.where import hydra_node

    return hydra_node(cfg)


def runs_a_search(hydra: Any) -> bool:
    mode = hydra.get("mode")
    mode = getattr(mode, "name", None if mode is None else str(mode))
    return mode == "MULTIRUN" and (hydra.get("sweeper") or {}).get("_target_") == RAY_TUNE_SWEEPER


def check(cfg: DictConfig, found: Problems) -> None:
    launcher = cfg.launcher
    hydra = _hydra(cfg)
    if hydra is not None:
        _search(hydra, found)
    _name(launcher, found)
    _object_store(launcher, found)
    _image_has_ray(launcher, found)
    _ray_version(cfg, found)
    _grace(launcher, found)
    if launcher.backoff_limit is not None:
        found.add(f"launcher.backoff_limit={launcher.backoff_limit!r} would retry the whole RayJob on a new Ray cluster "
                  "without saying why the search stopped: leave it null with launcher=rayjob, and continue a "
                  "stopped search by submitting the same command with its run_id (it continues in its sweep dir).",
                  "launcher.backoff_limit")


def _search(hydra: Any, found: Problems) -> None:
    if not runs_a_search(hydra):
        found.add("launcher=rayjob runs a search on a Ray cluster in Kubernetes, and no search is selected: add "
                  "search=ray-tune (or search=<a file in conf/search/>) with a search space, e.g. "
                  "model.lr='tag(log,interval(1e-4,1e-1))', or train one config with launcher=k8s-job.", "search")
        return
    address = (hydra.get("sweeper") or {}).get("address")
    if address is not None:
        found.add(f"hydra.sweeper.address={address!r} is set, but launcher=rayjob runs the search on the Ray cluster "
                  "it creates (address auto, inside it): drop hydra.sweeper.address.", "hydra.sweeper.address")


def _image_has_ray(launcher: DictConfig, found: Problems) -> None:
    """An image docker/build.sh recorded as built without Ray: the head pod's ``ray start``
    would fail in the cluster, minutes after submission. An image it has no record of (built
    elsewhere, or before builds recorded their extras) is taken as it is."""
    if found.refused("launcher.image"):
        return
    build = builds.lookup(launcher.image)
    if build is None or build.extras is None:
        return
    missing = [extra for extra in RAY_EXTRAS if extra not in build.extras]
    if missing:
        found.add(f"launcher.image={launcher.image} was built without {' and '.join(missing)} (docker/build.sh "
                  f"recorded extras: {', '.join(sorted(build.extras)) or 'none'} in {builds.records_file()}), so its "
                  f"Ray cluster cannot run the search: expected an image built with docker/build.sh --extras "
                  f"{','.join(RAY_EXTRAS)}.", "launcher.image")


def _ray_version(cfg: DictConfig, found: Problems) -> None:
    """KubeRay v1.7 reads rayClusterSpec.rayVersion as a version (apimachinery's ParseGeneric) and,
    for one it cannot parse or none, injects exec probes that run wget, absent from the image."""
    launcher = cfg.launcher
    if found.refused("launcher.image", "launcher.ray_version"):
        return
    version = ray_version(cfg)
    if version is not None and builds.VERSION.fullmatch(version):
        release = tuple(int(part) for part in re.findall(r"\d+", version)[:3])
        if release < HTTP_PROBES_FROM:
            where = "launcher.ray_version" if launcher.ray_version is not None else "launcher.image"
            found.add(f"{where}: Ray {version} is older than 2.53, for which KubeRay injects readiness and liveness "
                      "probes that run wget, which the training image does not have, so its Ray pods would never "
                      "become Ready: expected an image with Ray 2.53 or later (docker/build.sh installs the Ray "
                      "this project pins).", where)
        return
    if launcher.ray_version is not None:
        found.add(f"launcher.ray_version={launcher.ray_version!r} is not a Ray version: expected the release of the "
                  "Ray in launcher.image, e.g. 2.60.0.", "launcher.ray_version")
        return
    found.add(f"launcher.ray_version is unknown for launcher.image={launcher.image}: docker/build.sh recorded no Ray "
              f"version for it in {builds.records_file()} and no Ray is installed here, and without one KubeRay "
              "injects probes that run wget, which the image lacks, so its Ray pods never become Ready: expected "
              "launcher.ray_version=<the image's Ray release>, e.g. 2.60.0.", "launcher.ray_version")


def _grace(launcher: DictConfig, found: Problems) -> None:
    """The Ray pods' preStop hook stops the search within the grace period: too short a one
    SIGKILLs the search before it has recorded its trials as interrupted."""
    grace = launcher.termination_grace_period_s
    if found.refused("launcher.termination_grace_period_s") or not isinstance(grace, int) or grace >= MIN_GRACE_S:
        return
    found.add(f"launcher.termination_grace_period_s={grace} is too short for a RayJob: its Ray pods' preStop hook "
              f"needs up to {MIN_GRACE_S} s to let the search save its state and record its trials as interrupted "
              f"before the pod is killed: expected at least {MIN_GRACE_S}.", "launcher.termination_grace_period_s")


def _name(launcher: DictConfig, found: Problems) -> None:
    name = launcher.job_name
    if name is not None and not (naming.is_dns_1035_label(str(name)) and len(str(name)) <= MAX_NAME_LENGTH):
        found.add(f"launcher.job_name={name!r} is not a valid RayJob name: expected a DNS-1035 label of at most "
                  f"{MAX_NAME_LENGTH} characters (a lowercase letter first, then lowercase letters, digits and '-'), "
                  "since KubeRay names its Ray cluster <name>-<5 characters>.", "launcher.job_name")


def _object_store(launcher: DictConfig, found: Problems) -> None:
    """Ray's object store goes in /dev/shm (launcher.shm_size): too small a one cannot hold it."""
    if launcher.shm_size is None or found.refused("launcher.shm_size") \
            or quantities.parse(launcher.shm_size) is None:
        return
    if object_store_bytes(launcher.shm_size) < OBJECT_STORE_MINIMUM:
        least = -(-OBJECT_STORE_MINIMUM // int(OBJECT_STORE_SHARE * 2**20))
        found.add(f"launcher.shm_size={launcher.shm_size!r} is too small for Ray's object store, which gets "
                  f"{int(OBJECT_STORE_SHARE * 100)}% of it and needs at least 75Mi: expected at least {least}Mi, "
                  "or null (no /dev/shm volume: Ray keeps its objects in /tmp).", "launcher.shm_size")
    head_memory = launcher.head.resources.memory_limit or launcher.head.resources.memory
    if head_memory is not None and quantities.parse(head_memory) is not None \
            and quantities.parse(launcher.shm_size) * 2 > quantities.parse(head_memory):
        found.add(f"launcher.shm_size={launcher.shm_size!r} is more than half of the head's memory limit "
                  f"({head_memory!r}, launcher.head.resources), and /dev/shm counts against it: expected a larger "
                  "launcher.head.resources.memory or a smaller launcher.shm_size.", "launcher.shm_size")
