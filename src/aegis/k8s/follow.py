"""Follow a submitted Kubernetes object like a local run: status, logs, exit code.

The object is watched to a terminal condition (its ``Kind`` says which) while a second
thread streams the primary replica's logs (the Job's pod, the PyTorchJob's master)
through Pending, restarts and retried pods; warnings that explain a stall
(FailedScheduling, ImagePullBackOff, OOMKilled, ...) are printed as they appear.
Training logs go to stdout, Aegis's own lines to stderr. Nothing here names a kind.

A failed job ends with the triage paragraph (``aegis.k8s.triage``: which pod and rank,
why, its last log lines). A job that has not started after ``launcher.pending_timeout_s``
(a pod unschedulable, an image that cannot be pulled, a volume that cannot be mounted,
or nothing said at all) stops being followed with exit code 1 and a line that says why
and how to follow again or cancel: the job itself is left in place, since a node may yet
be added and only the user knows whether to wait.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, TextIO

from aegis.k8s import kueue
from aegis.k8s.client import Cluster, ClusterError
from aegis.k8s.kinds import Kind
from aegis.k8s.logs import ContainerLogs
from aegis.k8s.status import STALLED, exit_code, job_status, phrase
from aegis.core.lifecycle import CANCEL_FILE, State

CANCELLED_EXIT_CODE = 143  # as a cancelled local run: 128 + SIGTERM
NOT_STARTED_EXIT_CODE = 1  # stopped following a job that did not start within launcher.pending_timeout_s
_NOT_STARTED = object()  # what the watch returns when it stops waiting for a job to start


@dataclass(frozen=True)
class Target:
    kind: Kind
    name: str
    namespace: str
    run_id: Optional[str] = None
    run_dir: Optional[Path] = None  # where ``aegis cancel`` leaves its marker
    tracking: Optional[dict[str, Any]] = field(default=None, hash=False, compare=False)  # failure_tags.store

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
                 out: Optional[TextIO] = None, err: Optional[TextIO] = None, prefix: str = "",
                 pending_timeout_s: Optional[float] = None):
        self.cluster, self.target, self.poll_s, self.prefix = cluster, target, poll_s, prefix
        self.pending_timeout_s = pending_timeout_s  # None: wait for the job to start for ever
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self._finished = threading.Event()  # the object reached a terminal condition
        self._stop = threading.Event()  # stop streaming now (interrupt)
        self._seen: set[Any] = set()
        self._log_error: Optional[BaseException] = None
        self._surfacing = threading.Lock()
        self._queued = False  # suspended: held by its queue
        self._queued_since: Optional[str] = None  # since when
        self._admitted = False  # seen unsuspended once: a later suspension is a preemption
        self._obj: Optional[dict[str, Any]] = None  # the object as last watched
        self._pending_since: Optional[float] = None  # when it was last seen not pending (monotonic)
        self._not_started: Optional[str] = None  # why following stops before the job started

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

    def _surface_once(self) -> list[dict[str, Any]]:
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
        return pods

    def _check_started(self, pods: list[dict[str, Any]]) -> None:
        """Give up waiting once the job has been pending (not queued: Kueue's wait is its own)
        for ``pending_timeout_s``, with the reason a pod gives (``triage.explain``)."""
        obj, t = self._obj, self.target
        if self.pending_timeout_s is None or obj is None:
            return
        now = time.monotonic()
        if job_status(t.kind, obj, pods).state is not State.pending:
            self._pending_since = None
            return
        if self._pending_since is None:
            self._pending_since = now
        if now - self._pending_since < self.pending_timeout_s:
            return
        from aegis.k8s.triage import explain

        found = explain(self.cluster, t.kind, obj, pods, failed=False)
        waited = f"{self.pending_timeout_s:g} s"
        if found is None:
            why = "no pod has started and none says why (a large image still being pulled?)"
        else:
            why = f"{found.where()}: {found.cause}"
        self._not_started = f"{t.what} has not started after {waited}: {why}"

    def _monitor(self) -> None:
        """Surface stalls while the watch waits and the logs stream (both block)."""
        try:
            while not self._finished.is_set() and not self._stop.is_set():
                with self._surfacing:
                    pods = self._surface_once()
                    if self._not_started is None:
                        self._check_started(pods)
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

    def _watch_to_the_end(self) -> Any:
        """The object's terminal state; None when it was deleted by ``aegis cancel``;
        ``_NOT_STARTED`` when it has not started within ``pending_timeout_s``."""
        t = self.target
        last_phrase = None
        while True:
            for event, obj in self.cluster.watch(t.kind, t.name, t.namespace, timeout_s=max(1, round(self.poll_s))):
                if event == "DELETED":
                    if t.cancel_requested():
                        return None
                    raise ClusterError(f"{t.what} was deleted before it finished.")
                self._obj = obj
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
            if self._not_started is not None:
                return _NOT_STARTED

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
        if state is _NOT_STARTED:
            self.say(f"{self._not_started}.")
            self.say(f"Stopped following; the job is left in place (it may still start): follow again: "
                     f"{t.follow_again()}; cancel: {t.cancel_hint()}; launcher.pending_timeout_s=null waits "
                     "for ever.")
            return NOT_STARTED_EXIT_CODE
        self._surface()
        # The pods are read once at the end, and only where something reads them: a failure's
        # triage, or the launch record on a store this machine reaches.
        pods = (self.cluster.pods(t.namespace, t.kind.pods_selector(t.name))
                if state is not State.succeeded or t.tracking else [])
        code = 0 if state is State.succeeded else self._report(pods) or exit_code(t.kind, pods)
        self._record_launch(pods)
        self.say(f"{t.what} {'succeeded' if code == 0 else f'failed (exit code {code})'}")
        return code

    def _record_launch(self, pods: list[dict[str, Any]]) -> None:
        """The manifest and the pods' image IDs on the tracked run, where this machine reaches it."""
        t = self.target
        if not t.tracking:
            return
        from aegis.k8s.launch_tags import record

        manifest = Path(t.run_dir) / f"{t.kind.name.lower()}.yaml" if t.run_dir is not None else None
        recorded = record(t.tracking, t.run_id, manifest, t.kind, pods)
        if recorded:
            self.say(recorded)

    def _report(self, pods: list[dict[str, Any]]) -> Optional[int]:
        """Print the failure's paragraph (which pod and rank, why, its last log lines); the
        failing container's exit code, when it has one."""
        from aegis.k8s.triage import explain

        if self._obj is None:
            return None
        failure = explain(self.cluster, self.target.kind, self._obj, pods)
        if failure is None:
            return None
        for line in failure.paragraph().splitlines():
            self.say(line)
        from aegis.failures.tags import tag

        tagged = tag(self.target.tracking, self.target.run_id, failure)
        if tagged:
            self.say(tagged)
        return failure.exit_code or None

    def interrupt(self) -> None:
        self._stop.set()
