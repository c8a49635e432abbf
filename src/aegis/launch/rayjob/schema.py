"""The config of ``launcher=rayjob``: the Ray cluster's shape and each group's resources.

``launcher.resources`` sizes each worker pod (where most trials run), as it sizes the training
pod of every other Kubernetes launcher; ``launcher.head.resources`` sizes the head pod, which
runs the search's driver and, unless ``launcher.head.num_cpus=0``, trials too. Keys the shared
Kubernetes schema has but a RayJob gives no sense to default to null here and ``checks``
refuses a value in one sentence rather than dropping it silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from aegis.config import checks as c
from aegis.config.checks import meta
from aegis.k8s.schema import K8sLauncherConfig, ResourcesConfig


@dataclass
class RayHeadConfig:
    """The Ray head pod: the search's driver (the RayJob's entrypoint) and Ray's control plane."""

    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    # CPUs the head offers Ray (ray start --num-cpus); null: its CPU request, as KubeRay sets it.
    # 0 keeps trials off the head, for a head sized for the driver alone.
    num_cpus: Optional[int] = field(default=None, metadata=meta(c.at_least(0)))


@dataclass
class RayJobLauncherConfig(K8sLauncherConfig):
    """A KubeRay RayJob: a Ray head, ``workers`` worker pods, the search submitted to them."""

    name: str = "rayjob"
    # Worker pods beside the head (one worker group, a fixed size: min = max = replicas).
    # 0: a head-only Ray cluster.
    workers: int = field(default=1, metadata=meta(c.at_least(0)))
    head: RayHeadConfig = field(default_factory=RayHeadConfig)
    # The Ray version in launcher.image, rendered as rayClusterSpec.rayVersion: KubeRay (v1.7)
    # injects HTTP health probes for Ray >= 2.53 and, for an older or unknown one, exec probes
    # that run wget, which the training image does not have (its pods never become Ready). null:
    # the version docker/build.sh recorded for the image, else the Ray installed here.
    ray_version: Optional[str] = None
    # Seconds the Ray cluster is kept after the search ends (logs, a look at the head), then
    # KubeRay deletes it (shutdownAfterJobFinishes is always true). The RayJob object stays.
    ttl_seconds_after_finished: Optional[int] = field(default=60, metadata=meta(c.at_least(0)))
    # A retried RayJob would start the search again in a sweep dir that has one: refused when set
    # (checks.py); continue a search with hydra.sweeper.resume=true and the same run_id instead.
    backoff_limit: Optional[int] = None
