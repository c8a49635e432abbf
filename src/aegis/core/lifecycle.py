"""A job's life after submission, the same for every launcher (as TorchX's schedulers).

``submit`` returns a ``JobRef``: plain data, written to the run dir as ``job.json``, so
that any later process (``aegis status RUN`` in another terminal, days later) can find
the job again without the process that started it. From a ref a launcher answers
``status`` (a ``JobStatus``: one state word, per-replica detail, exit code and reason),
``logs`` (an iterator of lines, any replica's) and ``cancel``. Following a job in the
terminal is built from those two, once (``Launcher.follow`` in ``aegis.launch.base``).

Nothing here imports torch, lightning or the kubernetes client, nor any launcher: the
Kubernetes plumbing and training read these records too.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any, Optional

JOB_FILE = "job.json"
CANCEL_FILE = "cancel.requested"  # written by ``aegis cancel`` before it signals a local run
# Set by a launcher for the process it supervises (a torchrun gang, a pod): that child leaves
# ``job.json`` to the parent, which names itself there.
SUPERVISED_ENV = "AEGIS_SUPERVISED"


class State(str, Enum):
    pending = "pending"  # accepted, not yet placed (a pod being scheduled, an image pulled)
    queued = "queued"  # held by a queue (Kueue, SLURM) before it may start
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"  # stopped on request (``aegis cancel``, a deleted object)
    preempted = "preempted"  # stopped by the platform, checkpointed: the same command resumes
    unknown = "unknown"  # no longer observable (a deleted object, a process that left no record)

    @property
    def terminal(self) -> bool:
        return self in (State.succeeded, State.failed, State.cancelled, State.preempted, State.unknown)


@dataclass(frozen=True)
class JobRef:
    """Where a job is and how to reach it again; all plain values."""

    launcher: str
    run_id: str
    run_dir: str
    kind: str = "process"  # process (local, torchrun) or the Kubernetes kind (Job, PyTorchJob, ...)
    name: Optional[str] = None  # the cluster object's name
    namespace: Optional[str] = None
    uid: Optional[str] = None
    context: Optional[str] = None  # kube context it was submitted to
    pid: Optional[int] = None  # the process to signal (local, the torchrun parent)
    host: Optional[str] = None  # where that pid lives
    # That process's start (``process_start_time``): a pid reused by another process after
    # the run's died has another start time, so ``cancel`` leaves it alone. None where the
    # platform has no /proc.
    start_time: Optional[int] = None
    submitted_at: float = field(default_factory=time.time)
    # What else a backend needs to find the job again (a SLURM job id and cluster, a toy
    # launcher's handle), plain JSON values, written to and read back from job.json as they
    # are; the launcher renders it for display (``Launcher.describe``). "label", where set, is
    # that display.
    backend: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """The job in a few words from the fields every launcher shares (``SLURM job 12``,
        ``PyTorchJob ns/name``, ``pid 41 on host``): ``Launcher.describe``'s default."""
        if self.backend.get("label"):
            return str(self.backend["label"])
        if self.name:
            return f"{self.kind} {self.namespace}/{self.name}"
        return f"pid {self.pid} on {self.host}" if self.pid else ""

    def write(self) -> Path:
        """``job.json`` in the run dir, atomically (a reader never sees half of it)."""
        from aegis.core.files import write_json

        path = Path(self.run_dir) / JOB_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, asdict(self))
        return path

    @classmethod
    def read(cls, run_dir: Path) -> Optional["JobRef"]:
        try:
            data = json.loads((Path(run_dir) / JOB_FILE).read_text())
        except (OSError, ValueError):
            return None
        known = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or not {"launcher", "run_id", "run_dir"} <= data.keys():
            return None
        if not isinstance(data.get("backend") or {}, dict):
            return None
        # Keys this version does not know (a newer Aegis's, a plugin's written at top level)
        # are kept in ``backend`` rather than dropped, so the launcher still finds them.
        backend = {k: v for k, v in data.items() if k not in known}
        backend.update(data.get("backend") or {})
        return cls(**{k: v for k, v in data.items() if k in known and k != "backend"}, backend=backend)


@dataclass
class ReplicaStatus:
    """One process of a gang or one pod of a cluster job."""

    name: str  # rank0, worker-1, <pod name>
    state: State
    exit_code: Optional[int] = None
    reason: Optional[str] = None  # OOMKilled, ImagePullBackOff, a cause from the run's record
    node: Optional[str] = None


@dataclass
class JobStatus:
    state: State
    replicas: list[ReplicaStatus] = field(default_factory=list)
    exit_code: Optional[int] = None
    reason: Optional[str] = None  # one phrase: why it is in this state
    details: dict[str, Any] = field(default_factory=dict)  # e.g. the run's key metrics

    def exit_status(self) -> int:
        """The process exit status that stands for this outcome: 0 for a job that succeeded,
        else its exit code (1 when it has none to give)."""
        if self.state is State.succeeded:
            return 0
        return self.exit_code if self.exit_code not in (None, 0) else 1

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        for replica in data["replicas"]:
            replica["state"] = replica["state"].value
        return data


def valid_pid(pid: Any) -> bool:
    """A pid that names one process: ``os.kill`` takes 0 and negative numbers as process
    groups (-1: every process the user may signal), so a record holding one names none."""
    return isinstance(pid, int) and not isinstance(pid, bool) and pid > 0


def process_start_time(pid: int) -> Optional[int]:
    """When ``pid`` started, in clock ticks after boot (field 22 of ``/proc/<pid>/stat``):
    with the pid, it names one process for as long as the machine is up. None without /proc
    or once the process is gone."""
    if not valid_pid(pid):
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses; fields after it
        # start at field 3, so field 22 is the 20th after the last ")".
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def process_cmdline(pid: int) -> Optional[str]:
    """``pid``'s command line, arguments joined by spaces; None without /proc or once gone."""
    if not valid_pid(pid):
        return None
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def process_alive(pid: Optional[int], host: Optional[str]) -> Optional[bool]:
    """Whether ``pid`` still runs; None when it lives on another host (cannot tell from here)."""
    import socket

    if not valid_pid(pid):
        return False
    if host and host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # one that has exited but that its parent has not reaped yet runs nothing any more
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
