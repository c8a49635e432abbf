"""Run a rendered pod's container the way the kubelet would, with podman.

No cluster can be had here, but the image and the exact command, env, user and mounts
of each rendered pod can run for real: volumes become host folders (the outputs PVC is
a folder the test reads afterwards), an in-memory /dev/shm becomes --shm-size, and the
pod securityContext becomes --user, dropped capabilities and no-new-privileges.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Optional

import yaml

REPO = Path(__file__).resolve().parents[2]
PODMAN = ["podman", "--runtime", "runc"]
# Explicit ulimits: the engine's defaults exceed what this sandbox allows.
ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=1000:1000"]


def podman_available() -> Optional[str]:
    """Why containers cannot run here, or None when they can."""
    if shutil.which("podman") is None or shutil.which("runc") is None:
        return "podman and runc are not installed (.ci/run installs them)"
    probe = subprocess.run([*PODMAN, "info"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"podman does not work here: {probe.stderr.strip()[:200]}"
    return None


def pod_specs(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Pod specs by role: {'job': ...} for a Job, {'master': ..., 'worker': ...} for a PyTorchJob,
    {'node': ...} for a TrainJob (every node's pod is the same: its trainer and runtime patch put
    together as Trainer does)."""
    if manifest["kind"] == "Job":
        return {"job": manifest["spec"]["template"]["spec"]}
    if manifest["kind"] == "TrainJob":
        from aegis.launch.trainjob.validate import node_pod_template

        return {"node": node_pod_template(manifest)["spec"]}
    replicas = manifest["spec"]["pytorchReplicaSpecs"]
    return {role.lower(): spec["template"]["spec"] for role, spec in replicas.items()}


def load_manifest(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def run_args(
    pod: dict[str, Any],
    *,
    name: str,
    volumes: dict[str, Path],
    env: Optional[dict[str, str]] = None,
    memory_limit: bool = False,
) -> list[str]:
    """`podman run` arguments for the pod's first container; ``volumes`` maps a volume
    name to the host folder standing in for it (an emptyDir in memory needs none).
    ``memory_limit``: the container's ``resources.limits.memory`` as its cgroup's limit, with
    no swap, as the kubelet sets it."""
    [container] = [c for c in pod["containers"]]
    pod_security = pod.get("securityContext", {})
    args = [*PODMAN, "run", "--detach", "--name", name, "--network", "host", *ULIMITS,
            "--user", f"{pod_security.get('runAsUser', 0)}:{pod_security.get('runAsGroup', 0)}"]
    security = container.get("securityContext", {})
    for capability in security.get("capabilities", {}).get("drop", []):
        args += ["--cap-drop", capability]
    if security.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    declared = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = declared[mount["name"]]
        if volume.get("emptyDir", {}).get("medium") == "Memory" and mount["mountPath"] == "/dev/shm":
            args += ["--shm-size", volume["emptyDir"].get("sizeLimit", "64Mi").replace("i", "")]
            continue
        host = volumes[mount["name"]]
        mode = "ro" if mount.get("readOnly") else "rw"
        args += ["--volume", f"{host}:{mount['mountPath']}:{mode}"]
    limit = (container.get("resources") or {}).get("limits", {}).get("memory")
    if memory_limit and limit:
        from aegis.core.quantities import parse

        size = str(int(parse(limit)))
        args += ["--memory", size, "--memory-swap", size]
    for item in container.get("env", []):
        if "value" in item:  # valueFrom (secrets) would come from the cluster
            args += ["--env", f"{item['name']}={item['value']}"]
    for key, value in (env or {}).items():
        args += ["--env", f"{key}={value}"]
    # As the kubelet does: `command` replaces the image's ENTRYPOINT (tini would no longer
    # be PID 1), `args` replaces its CMD and runs under the ENTRYPOINT.
    if "command" in container:
        args += ["--entrypoint", json.dumps(list(container["command"]))]
    args.append(container["image"])
    return args + list(container.get("args", []))


def start(args: list[str]) -> str:
    result = subprocess.run(args, capture_output=True, text=True, check=True)
    return result.stdout.strip()


def wait(name: str, timeout: float = 600) -> int:
    result = subprocess.run([*PODMAN, "wait", name], capture_output=True, text=True, timeout=timeout, check=True)
    return int(result.stdout.strip().splitlines()[-1])


def logs(name: str) -> str:
    result = subprocess.run([*PODMAN, "logs", name], capture_output=True, text=True)
    return result.stdout + result.stderr


def remove(name: str) -> None:
    subprocess.run([*PODMAN, "rm", "--force", "--time", "0", name], capture_output=True)



class OOMEvents:
    """The OOM events of a running container's memory cgroup, as the runtime under a kubelet
    watches them (containerd registers the same eventfd on cgroup v1's memory.oom_control,
    and reports ``reason: OOMKilled`` after one).

    Podman's own ``State.OOMKilled`` stays false in this sandbox (cgroup v1, cgroupfs), though
    the kernel's OOM killer did act; so the test harness, standing in for the runtime, watches.
    cgroup v1 signals the eventfd also when the cgroup is removed at the container's exit:
    an event while memory.oom_control can still be read is an OOM, one after is the removal.
    On cgroup v2 this watches nothing: ``pod_status`` then has podman's flag alone (its conmon
    reads memory.events there).
    """

    def __init__(self, name: str):
        self.oom = False
        self._fd: Optional[int] = None
        path = subprocess.run([*PODMAN, "inspect", "--format", "{{.State.CgroupPath}}", name],
                              capture_output=True, text=True, check=True).stdout.strip()
        base = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
        if not (base / "memory.oom_control").exists():
            return  # cgroup v2
        import os
        import threading

        try:
            efd, self._fd = os.eventfd(0), os.open(base / "memory.oom_control", os.O_RDONLY)
            (base / "cgroup.event_control").write_text(f"{efd} {self._fd}")
        except OSError:  # the container has already ended
            return

        def watch() -> None:
            os.eventfd_read(efd)
            try:
                os.pread(self._fd, 256, 0)
                self.oom = True
            except OSError:  # ENODEV: the cgroup was removed, no OOM before it
                pass

        self._thread = threading.Thread(target=watch, daemon=True)
        self._thread.start()

    def killed(self, timeout: float = 10) -> bool:
        """Whether the cgroup had an OOM, once the container has ended (its removal ends the watch)."""
        if getattr(self, "_thread", None) is not None:
            self._thread.join(timeout)
        return self.oom


def pod_status(pod: dict[str, Any], name: str, oom_event: bool = False) -> dict[str, Any]:
    """The pod as the API server would report it after its container ended: the kubelet's
    container status, built from what the runtime says (``podman inspect``, and ``oom_event``
    from ``OOMEvents``): ``reason: OOMKilled`` when the container's cgroup had an OOM kill,
    else ``Error`` for a non-zero exit, ``Completed`` for zero."""
    [info] = json.loads(subprocess.run([*PODMAN, "inspect", name], capture_output=True, text=True,
                                       check=True).stdout)
    state = info["State"]
    code = int(state["ExitCode"])
    oom = bool(state.get("OOMKilled")) or oom_event
    reason = "OOMKilled" if oom else ("Completed" if code == 0 else "Error")
    [container] = pod["containers"]
    terminated = {"exitCode": code, "reason": reason, "startedAt": state.get("StartedAt"),
                  "finishedAt": state.get("FinishedAt")}
    if state.get("Error"):
        terminated["message"] = state["Error"]
    return {"metadata": {"name": name, "labels": {}}, "spec": pod,
            "status": {"phase": "Succeeded" if code == 0 else "Failed",
                       "containerStatuses": [{"name": container["name"], "image": container["image"],
                                              "restartCount": 0, "state": {"terminated": terminated}}]}}
