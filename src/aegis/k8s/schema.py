"""What every Kubernetes launcher's config shares: the pod, where it runs, how it is followed.

Each Kubernetes launcher's own schema (in its folder under ``aegis.launch``) extends
``K8sLauncherConfig``. Field checks
here are the plain range/choice kind; rules that need Kubernetes knowledge (quantities,
image references, DNS names) live in ``aegis.k8s.checks`` and run from validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from omegaconf import MISSING

from aegis.config import checks as c
from aegis.config.checks import meta
from aegis.config.schema import LauncherConfig


@dataclass
class ResourcesConfig:
    """Requests and limits of each training container.

    Memory is limited to what is requested (a pod that outgrows it is OOMKilled rather
    than evicting neighbours); CPU is not limited unless asked, since CFS throttling
    slows data loading for no one's benefit. ``gpu`` goes to both requests and limits
    as ``nvidia.com/gpu``, the only way Kubernetes accepts extended resources.
    """

    cpu: Optional[str] = "1"
    memory: Optional[str] = "2Gi"
    cpu_limit: Optional[str] = None
    memory_limit: Optional[str] = None  # null: the memory request
    gpu: int = field(default=0, metadata=meta(c.at_least(0)))
    ephemeral_storage: Optional[str] = None


@dataclass
class OutputsVolumeConfig:
    """Where run dirs (checkpoints, logs, the embedded MLflow store) live in the pod.

    A PersistentVolumeClaim (``claim``, ReadWriteMany when pods of a PyTorchJob land on
    several nodes) or a node directory (``host_path``, fine on one-node kind/minikube).
    With neither the run dir is an emptyDir and disappears with the pod.
    """

    claim: Optional[str] = "aegis-outputs"
    host_path: Optional[str] = None
    # A node directory is mounted read-write into the pod: only when this says so, and never
    # a system directory or a container runtime's socket (aegis.k8s.checks).
    allow_host_path: bool = False
    mount_path: str = field(default="/outputs", metadata=meta(c.non_empty()))


@dataclass
class DatasetCacheConfig:
    """A PersistentVolumeClaim that keeps downloaded/preprocessed data across runs.

    Mounted (and ``$AEGIS_DATASET_CACHE`` set) only when the data config says it uses a
    cache (``data.uses_dataset_cache``): digits and synthetic need none, and a claim that
    is never read should not keep a pod Pending. ``read_only`` for pods that only read a
    cache filled beforehand (a ReadOnlyMany claim then serves pods on several nodes).
    """

    claim: Optional[str] = "aegis-dataset-cache"
    mount_path: str = field(default="/data", metadata=meta(c.non_empty()))
    read_only: bool = False


@dataclass
class TolerationConfig:
    key: Optional[str] = None
    operator: str = field(default="Equal", metadata=meta(c.one_of("Equal", "Exists")))
    value: Optional[str] = None
    effect: Optional[str] = field(
        default=None, metadata=meta(c.one_of("NoSchedule", "PreferNoSchedule", "NoExecute"))
    )
    toleration_seconds: Optional[int] = field(default=None, metadata=meta(c.at_least(0)))


@dataclass
class SecurityConfig:
    """The pod runs as this non-root user and group (0, root's, is refused); ``fs_group``
    makes mounted volumes writable."""

    run_as_user: int = field(default=1000, metadata=meta(c.at_least(1)))
    run_as_group: int = field(default=1000, metadata=meta(c.at_least(1)))
    fs_group: Optional[int] = field(default=1000, metadata=meta(c.at_least(1)))
    read_only_root_filesystem: bool = False


@dataclass
class K8sLauncherConfig(LauncherConfig):
    """What both Kubernetes launchers share: the pod, where it runs, how it is followed."""

    name: str = MISSING

    # Required: <registry>/<repo>:<tag> or <registry>/<repo>@sha256:<digest> of an image
    # built with docker/build.sh and pushed where the cluster pulls from. No default: a
    # default could only name an image no cluster has. A tag docker/build.sh recorded with
    # its registry digest is pinned to it in the manifest (aegis.k8s.builds).
    image: Optional[str] = None
    # kind/minikube: an image loaded onto the node under a name without a registry host
    # (which a real cluster would pull from Docker Hub) is accepted only with this set.
    allow_unqualified_image: bool = False
    image_pull_policy: str = field(
        default="IfNotPresent", metadata=meta(c.one_of("Always", "IfNotPresent", "Never"))
    )
    image_pull_secrets: List[str] = field(default_factory=list)
    namespace: str = field(default="default", metadata=meta(c.non_empty()))
    context: Optional[str] = None  # kubeconfig context; null: current, or in-cluster
    # The Job/PyTorchJob name (``launcher.name`` already names the launcher kind).
    # null: <task_name>-<run id>, DNS-safe and unique per submission.
    job_name: Optional[str] = None
    # Inside the image: the interpreter and the entrypoint, relative to its WORKDIR.
    python: str = field(default="python", metadata=meta(c.non_empty()))
    entrypoint: str = field(default="train.py", metadata=meta(c.non_empty()))
    working_dir: Optional[str] = None
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    env: Dict[str, str] = field(default_factory=dict)
    # Env vars from one key of a Secret, as ``NAME: <secret>/<key>`` (a secretKeyRef):
    # credentials never appear in a manifest.
    secret_env: Dict[str, str] = field(default_factory=dict)
    env_from: List[str] = field(default_factory=list)  # Secrets whose keys all become env
    outputs: OutputsVolumeConfig = field(default_factory=OutputsVolumeConfig)
    dataset_cache: DatasetCacheConfig = field(default_factory=DatasetCacheConfig)
    # An init container (python -m aegis.data fetch) fills the dataset cache before the
    # training container starts, so a gang never races to download (aegis.k8s.prefetch).
    prefetch_data: bool = False
    # In-memory /dev/shm for DataLoader workers; null: none. It counts against the memory
    # limit, so at most half of it is accepted.
    shm_size: Optional[str] = "512Mi"
    service_account: Optional[str] = None
    node_selector: Dict[str, str] = field(default_factory=dict)
    tolerations: List[TolerationConfig] = field(default_factory=list)
    labels: Dict[str, str] = field(default_factory=dict)
    annotations: Dict[str, str] = field(default_factory=dict)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    # Kueue (docs/kubernetes.md#kueue): the LocalQueue (label kueue.x-k8s.io/queue-name) and
    # the WorkloadPriorityClass (kueue.x-k8s.io/priority-class), on the job object. Kueue's
    # webhook suspends a queued job until it is admitted; Aegis never sets suspend itself.
    queue: Optional[str] = None
    priority_class: Optional[str] = None
    # Clusters without Kueue: a PriorityClass for the pods (priorityClassName), which the
    # scheduler uses to order and preempt pods.
    pod_priority_class: Optional[str] = None
    # Seconds between SIGTERM (preemption, eviction, deletion) and SIGKILL: the pod's
    # terminationGracePeriodSeconds, and $AEGIS_TERMINATION_GRACE_S for the run to budget
    # its checkpoint-and-exit within.
    termination_grace_period_s: int = field(default=60, metadata=meta(c.at_least(1)))
    backoff_limit: int = field(default=2, metadata=meta(c.at_least(0)))
    active_deadline_seconds: Optional[int] = field(default=None, metadata=meta(c.at_least(1)))
    ttl_seconds_after_finished: Optional[int] = field(default=86400, metadata=meta(c.at_least(0)))
    # Behaviour of `python train.py` itself.
    dry_run: bool = False  # print + write the manifest, contact no cluster
    server_dry_run: bool = False  # submit with dryRun=All: the API server checks, creates nothing
    wait: bool = True  # follow status and logs to the end; false: print the name and return
    cancel_on_interrupt: bool = False  # Ctrl-C deletes the job instead of only detaching
    poll_interval_s: float = field(default=2.0, metadata=meta(c.greater_than(0)))
    # Following stops (exit 1; the job is left in place) when no pod has started this long
    # after the job stopped being queued, and says why (unschedulable, image pull, volume
    # mount: aegis.k8s.triage); null: wait for ever.
    pending_timeout_s: Optional[float] = field(default=600.0, metadata=meta(c.greater_than(0)))



