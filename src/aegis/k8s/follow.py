"""Follow a submitted Kubernetes object like a local run: status, logs, exit code.

The object is watched to a terminal condition (its ``Kind`` says which) while a second
thread streams the primary replica's logs (the Job's pod, the PyTorchJob's master)
through Pending, restarts and retried pods; warnings that explain a stall
(FailedScheduling, ImagePullBackOff, OOMKilled, ...) are printed as they appear.
Training logs go to stdout, Aegis's own lines to stderr. Nothing here names a kind.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, TextIO

from aegis.k8s import kueue
from aegis.k8s.client import Cluster, ClusterError
from aegis.k8s.kinds import Kind
from aegis.k8s.logs import ContainerLogs
from aegis.k8s.status import STALLED, exit_code, phrase
from aegis.launch.lifecycle import CANCEL_FILE, State

CANCELLED_EXIT_CODE = 143  # as a cancelled local run: 128 + SIGTERM


@dataclass(frozen=True)
class Target:
    kind: Kind
    name: str
    namespace: str
    run_id: Optional[str] = None
    run_dir: Optional[Path] = None  # where ``aegis cancel`` leaves its marker

    @property
    def what(self) -> str:
        return f"{self.kind.name} {self.namespace}/{self.name}"

    def cancel_requested(self) -> bool:
        return self.run_dir is not None and (Path(self.run_dir) / CANCEL_FILE).exists()

    def follow_again(self) -> str:
        kubectl = (f"kubectl logs -f -n {self.namespace} -l {self.kind.primary_selector(self.name)} "
                   f"-c {self.kind.container}")
        if self.run_id is None:
            return kubectl
        return f"python -m aegis logs {self.run_id} --follow (or {kubectl})"

    def cancel_hint(self) -> str:
        if self.run_id is None:
            return f"kubectl delete {self.kind.plural} {self.name} -n {self.namespace}"
        return f"python -m aegis cancel {self.run_id}"


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
        self._queued = False  # suspended: held by its queue
        self._queued_since: Optional[str] = None  # since when
        self._admitted = False  # seen unsuspended once: a later suspension is a preemption

    def say(self, text: str) -> None:
        print(f"[k8s] {self.prefix}{text}", file=self.err, flush=True)

    # ------------------------------------------------------------------ logs

    def _logs(self) -> None:
        t = self.target
        stream = ContainerLogs(self.cluster, t.kind, t.name, t.namespace, poll_s=self.poll_s, stop=self._stop,
                               notice=self.say)
        try:
            for line in stream.follow(self._finished.is_set):
                print(f"{self.prefix}{line}", file=self.out, flush=True)
        except BaseException as exc:  # reported by the main thread
            self._log_error = exc

    # ---------------------------------------------------------------- stalls

    def _surface(self) -> None:
        """Print, once each, warnings and container states that explain a stall."""
        with self._surfacing:
            self._surface_once()

    def _surface_once(self) -> None:
        t = self.target
        pods = self.cluster.pods(t.namespace, t.kind.pods_selector(t.name))
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

    def _queue_line(self, obj: dict[str, Any]) -> Optional[str]:
        """What a change of the object's suspension means, once per change: queued (at first),
        preempted and requeued (suspended after it ran), admitted (let go); None otherwise.

        Kueue preempting a job is not its end: the job is suspended, its pods deleted, and it
        is admitted again later, so following goes on until a terminal condition."""
        suspended = self.target.kind.suspended(obj)
        line = None
        if suspended and not self._queued:
            self._queued, self._queued_since = True, kueue.queued_since(obj)
            line = kueue.requeued(obj) if self._admitted else kueue.waiting(obj)
        elif not suspended:
            if self._queued:
                line = kueue.admitted(obj, self._queued_since)
            self._queued, self._admitted = False, True
        return line

    def _watch_to_the_end(self) -> Optional[State]:
        """The object's terminal state; None when it was deleted by ``aegis cancel``."""
        t = self.target
        last_phrase = None
        while True:
            for event, obj in self.cluster.watch(t.kind, t.name, t.namespace, timeout_s=max(1, round(self.poll_s))):
                if event == "DELETED":
                    if t.cancel_requested():
                        return None
                    raise ClusterError(f"{t.what} was deleted before it finished.")
                state, _ = t.kind.condition_state(obj)
                terminal = state is not None and state.terminal
                queue_line = None if terminal else self._queue_line(obj)
                if queue_line is not None:
                    self.say(f"{t.what}: {queue_line}")
                now = phrase(obj)
                if now != last_phrase:
                    if queue_line is None and not self._queued:  # a queued job's phrase says no more
                        self.say(f"{t.what}: {now}")
                    last_phrase = now
                if terminal:
                    return state
            if self._log_error is not None:
                raise self._log_error

    def run(self) -> int:
        t = self.target
        logs = threading.Thread(target=self._logs, name="aegis-k8s-logs", daemon=True)
        logs.start()
        threading.Thread(target=self._monitor, name="aegis-k8s-monitor", daemon=True).start()
        try:
            state = self._watch_to_the_end()
            self._finished.set()
            if state is not None:
                logs.join(timeout=30)
        finally:
            self._stop.set()
        if state is None:
            self.say(f"{t.what} was cancelled (deleted on request)")
            return CANCELLED_EXIT_CODE
        self._surface()
        if state is State.succeeded:
            code = 0
        else:
            code = exit_code(t.kind, self.cluster.pods(t.namespace, t.kind.pods_selector(t.name)))
        self.say(f"{t.what} {'succeeded' if code == 0 else f'failed (exit code {code})'}")
        return code

    def interrupt(self) -> None:
        self._stop.set()
