"""The log lines of one replica of a Kubernetes object, across its container restarts and pods.

A replica's training container may start several times (a restart after OOM or
preemption, a Job's retry in a new pod); each start has its own log. ``follow`` streams
every start not yet streamed, oldest first, until the caller says the object is finished,
so ``aegis logs RUN --follow`` and the terminal follower read training output through
restarts. ``snapshot`` is the latest start's log as it is now.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Generator, Iterator, Optional

from aegis.k8s.client import Cluster, ClusterError
from aegis.k8s.kinds import Kind
from aegis.k8s.status import by_creation, container_status, started


class ContainerLogs:
    def __init__(self, cluster: Cluster, kind: Kind, name: str, namespace: str, *, replica: Optional[str] = None,
                 poll_s: float = 2.0, stop: Optional[threading.Event] = None,
                 notice: Callable[[str], None] = lambda text: None):
        """``replica``: a replica name (``worker-1``) or a pod name; None: the primary replica."""
        self.cluster, self.kind, self.name, self.namespace = cluster, kind, name, namespace
        self.replica, self.poll_s, self.notice = replica, poll_s, notice
        self.stop = stop or threading.Event()
        self._streamed: set[tuple[str, int]] = set()
        self._last_pod: Optional[str] = None

    @property
    def what(self) -> str:
        return f"{self.kind.name} {self.namespace}/{self.name}"

    def pods(self) -> list[dict[str, Any]]:
        """This replica's pods, oldest first; an unknown replica name is an error once pods exist."""
        if self.replica is None:
            return by_creation(self.cluster.pods(self.namespace, self.kind.primary_selector(self.name)))
        pods = self.cluster.pods(self.namespace, self.kind.pods_selector(self.name))
        names = {self.kind.replica_name(p, self.name): p for p in pods}
        mine = [p for p in pods if self.replica in (p["metadata"]["name"], self.kind.replica_name(p, self.name))]
        if pods and not mine:
            raise ClusterError(f"{self.what} has no replica {self.replica}: its replicas are "
                               f"{', '.join(sorted(names))}.")
        return by_creation(mine)

    def snapshot(self) -> Iterator[str]:
        """The log of the replica's latest container start, as it is now."""
        pods = self.pods()
        ran = [p for p in pods if started(p, self.kind.container)]
        if not ran:
            who = self.replica or "its primary replica"
            if not pods:
                raise ClusterError(f"{self.what} has no pod for {who} (not created yet, or already removed).")
            waiting = (container_status(pods[-1], self.kind.container).get("state") or {}).get("waiting") or {}
            raise ClusterError(f"{who} of {self.what} has not started yet ({waiting.get('reason') or 'Pending'}); "
                               "follow its logs to wait for it.")
        yield from self.cluster.stream_logs(ran[-1]["metadata"]["name"], self.namespace, self.kind.container,
                                            follow=False)

    def follow(self, finished: Callable[[], bool]) -> Iterator[str]:
        """Every container start's lines as they are written, until ``finished()`` and none is left."""
        while not self.stop.is_set():
            finishing = finished()  # sampled first: a start that appears meanwhile is still streamed
            if (yield from self._next_start()):
                continue
            if finishing:
                return
            self.stop.wait(min(self.poll_s, 0.5))

    def _next_start(self) -> Generator[str, None, bool]:
        """Stream the oldest container start not yet streamed; False when there is none."""
        for pod in self.pods():
            cs = container_status(pod, self.kind.container)
            key = (pod["metadata"].get("uid") or pod["metadata"]["name"], int(cs.get("restartCount") or 0))
            if not started(pod, self.kind.container) or key in self._streamed:
                continue
            name = pod["metadata"]["name"]
            try:
                lines = self.cluster.stream_logs(name, self.namespace, self.kind.container)
                first = next(lines, None)
            except ClusterError:  # the container is between states: try again next pass
                return False
            if self._last_pod is not None and self._last_pod != name:
                self.notice(f"now following pod {name}")
            elif self._last_pod is not None:
                self.notice(f"pod {name} restarted (restart {key[1]}): following the new container")
            self._last_pod = name
            self._streamed.add(key)
            if first is None:
                return True
            yield first
            for line in lines:
                yield line
                if self.stop.is_set():
                    return False
            return True
        return False
