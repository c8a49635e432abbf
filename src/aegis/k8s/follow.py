"""Follow a submitted Job or PyTorchJob like a local run: status, logs, exit code.

The object is watched to a terminal condition while a second thread streams the logs
of the Job's pod (the PyTorchJob's master), through Pending and restarts; warnings
that explain a stall (FailedScheduling, ImagePullBackOff, OOMKilled, ...) are printed
as they appear. Training logs go to stdout, Aegis's own lines to stderr.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Optional, TextIO

from aegis.k8s.client import Cluster, ClusterError

MASTER_SELECTOR = "training.kubeflow.org/job-name={name},training.kubeflow.org/job-role=master"
JOB_SELECTOR = "job-name={name}"
# Container states that mean the pod will not make progress by itself.
STALLED = {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CrashLoopBackOff",
           "CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


@dataclass(frozen=True)
class Target:
    kind: str  # Job | PyTorchJob
    name: str
    namespace: str
    container: str

    @property
    def pod_selector(self) -> str:
        return (JOB_SELECTOR if self.kind == "Job" else MASTER_SELECTOR).format(name=self.name)

    @property
    def all_pods_selector(self) -> str:
        """Every pod of the job: workers stall too (image pulls, scheduling)."""
        return JOB_SELECTOR.format(name=self.name) if self.kind == "Job" else f"training.kubeflow.org/job-name={self.name}"

    def follow_again(self) -> str:
        return (f"kubectl logs -f -n {self.namespace} -l {self.pod_selector} -c {self.container}  "
                f"(status: kubectl get {self.kind.lower()} {self.name} -n {self.namespace})")


def _true_conditions(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("status") == "True"]


def outcome(kind: str, obj: dict[str, Any]) -> Optional[bool]:
    """True: succeeded; False: failed; None: not finished."""
    types = {c["type"] for c in _true_conditions(obj)}
    if kind == "Job":
        if "Complete" in types:
            return True
        if "Failed" in types:
            return False
        return None
    if "Succeeded" in types:
        return True
    if "Failed" in types:
        return False
    return None


def state(kind: str, obj: dict[str, Any]) -> str:
    """A short phrase for the object's current state."""
    conditions = _true_conditions(obj)
    status = obj.get("status") or {}
    if conditions:
        last = conditions[-1]
        words = last["type"]
        if last.get("reason") or last.get("message"):
            words += f" ({': '.join(x for x in (last.get('reason'), last.get('message')) if x)})"
        return words
    if kind == "Job":
        if status.get("active"):
            return f"Active ({status['active']} pod{'s' if status['active'] != 1 else ''})"
        return "Created"
    return "Created"


def _container_status(pod: dict[str, Any], container: str) -> dict[str, Any]:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == container:
            return cs
    return {}


class Follower:
    def __init__(self, cluster: Cluster, target: Target, *, poll_s: float = 2.0,
                 out: Optional[TextIO] = None, err: Optional[TextIO] = None, prefix: str = ""):
        self.cluster, self.target, self.poll_s, self.prefix = cluster, target, poll_s, prefix
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self._finished = threading.Event()  # the object reached a terminal condition
        self._stop = threading.Event()  # stop streaming now (interrupt)
        self._seen: set[Any] = set()
        self._log_error: Optional[BaseException] = None
        self._surfacing = threading.Lock()

    def say(self, text: str) -> None:
        print(f"[k8s] {self.prefix}{text}", file=self.err, flush=True)

    # ------------------------------------------------------------------ logs

    def _stream_pass(self, streamed: set[tuple[str, int]], last_pod: list[str]) -> bool:
        """Stream the next container start not yet streamed; False when there is none."""
        t = self.target
        pods = sorted(self.cluster.pods(t.namespace, t.pod_selector),
                      key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))
        for pod in pods:
            cs = _container_status(pod, t.container)
            started = "running" in (cs.get("state") or {}) or "terminated" in (cs.get("state") or {})
            key = (pod["metadata"].get("uid") or pod["metadata"]["name"], int(cs.get("restartCount") or 0))
            if not started or key in streamed:
                continue
            name = pod["metadata"]["name"]
            try:
                lines = self.cluster.stream_logs(name, t.namespace, t.container)
                first = next(lines, None)
            except ClusterError:  # the container is between states: try again next pass
                return False
            if last_pod and last_pod[-1] != name:
                self.say(f"now following pod {name}")
            elif last_pod:
                self.say(f"pod {name} restarted (restart {key[1]}): following the new container")
            last_pod.append(name)
            streamed.add(key)
            if first is None:
                return True
            print(f"{self.prefix}{first}", file=self.out, flush=True)
            for line in lines:
                print(f"{self.prefix}{line}", file=self.out, flush=True)
                if self._stop.is_set():
                    return False
            return True
        return False

    def _logs(self) -> None:
        streamed: set[tuple[str, int]] = set()
        last_pod: list[str] = []
        try:
            while not self._stop.is_set():
                finishing = self._finished.is_set()
                if self._stream_pass(streamed, last_pod):
                    continue
                if finishing:
                    return
                self._stop.wait(min(self.poll_s, 0.5))
        except BaseException as exc:  # reported by the main thread
            self._log_error = exc

    # ---------------------------------------------------------------- stalls

    def _surface(self) -> None:
        """Print, once each, warnings and container states that explain a stall."""
        with self._surfacing:
            self._surface_once()

    def _surface_once(self) -> None:
        t = self.target
        pods = self.cluster.pods(t.namespace, t.all_pods_selector)
        for pod in pods:
            name = pod["metadata"]["name"]
            phase = (pod.get("status") or {}).get("phase")
            if phase and ("phase", name, phase) not in self._seen:
                self._seen.add(("phase", name, phase))
                self.say(f"pod {name}: {phase}")
            for cs in (pod.get("status") or {}).get("containerStatuses") or []:
                waiting = (cs.get("state") or {}).get("waiting") or {}
                if waiting.get("reason") in STALLED and ("waiting", name, waiting["reason"]) not in self._seen:
                    self._seen.add(("waiting", name, waiting["reason"]))
                    self.say(f"pod {name}: {waiting['reason']}: {waiting.get('message', '')}".rstrip(": "))
                for where in ("state", "lastState"):
                    term = (cs.get(where) or {}).get("terminated") or {}
                    if term.get("reason") == "OOMKilled":
                        key = ("oom", name, cs.get("restartCount"), term.get("finishedAt"))
                        if key not in self._seen:
                            self._seen.add(key)
                            self.say(f"pod {name}: container {cs.get('name')} was OOMKilled (exit {term.get('exitCode')}): "
                                     "raise launcher.resources.memory")
        names = [t.name] + [p["metadata"]["name"] for p in pods]
        for event in self.cluster.events(t.namespace, names):
            if event.get("type") != "Warning":
                continue
            key = ("event", (event.get("metadata") or {}).get("uid"), event.get("count"), event.get("message"))
            if key in self._seen:
                continue
            self._seen.add(key)
            obj = event.get("involvedObject") or {}
            self.say(f"{event.get('reason')} {obj.get('kind', '').lower()}/{obj.get('name')}: {event.get('message')}")

    def _monitor(self) -> None:
        """Surface stalls while the watch waits and the logs stream (both block)."""
        try:
            while not self._finished.is_set() and not self._stop.is_set():
                self._surface()
                self._stop.wait(self.poll_s)
        except BaseException as exc:  # reported by the main thread
            self._log_error = exc

    # ------------------------------------------------------------------ main

    def _exit_code(self, succeeded: bool) -> int:
        if succeeded:
            return 0
        t = self.target
        codes = []
        pods = sorted(self.cluster.pods(t.namespace, t.pod_selector),
                      key=lambda p: p["metadata"].get("creationTimestamp") or "")
        for pod in pods:
            term = (_container_status(pod, t.container).get("state") or {}).get("terminated") or {}
            if term.get("exitCode"):
                codes.append(int(term["exitCode"]))
        return codes[-1] if codes else 1

    def run(self) -> int:
        t = self.target
        logs = threading.Thread(target=self._logs, name="aegis-k8s-logs", daemon=True)
        logs.start()
        threading.Thread(target=self._monitor, name="aegis-k8s-monitor", daemon=True).start()
        last_state = None
        result: Optional[bool] = None
        try:
            while result is None:
                for kind, obj in self.cluster.watch(t.kind, t.name, t.namespace, timeout_s=max(1, round(self.poll_s))):
                    if kind == "DELETED":
                        raise ClusterError(f"{t.kind} {t.namespace}/{t.name} was deleted before it finished.")
                    now = state(t.kind, obj)
                    if now != last_state:
                        self.say(f"{t.kind} {t.namespace}/{t.name}: {now}")
                        last_state = now
                    result = outcome(t.kind, obj)
                    if result is not None:
                        break
                if self._log_error is not None:
                    raise self._log_error
            self._finished.set()
            logs.join(timeout=30)
        finally:
            self._stop.set()
        self._surface()
        code = self._exit_code(result)
        self.say(f"{t.kind} {t.namespace}/{t.name} {'succeeded' if result else f'failed (exit code {code})'}")
        return code

    def interrupt(self) -> None:
        self._stop.set()
