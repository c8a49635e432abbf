"""A small, stateful fake of the Kubernetes API server, on loopback over real HTTP.

It serves exactly what ``aegis.k8s.client`` calls (Jobs, PyTorchJobs, TrainJobs, RayJobs, pods, pod logs,
events; create, get, list/watch, delete; reading a namespace, a PersistentVolumeClaim, the
nodes)
with the API server's status codes and
``Status`` bodies, so the official ``kubernetes`` client runs unmodified against it.
Tests drive a job's life with the helpers (``set_status``, ``add_pod``, ``log``, ``suspend``,
``delete_pod``, ...; ``kueue = True`` suspends a queued object on creation, as Kueue's webhook),
usually from a scenario thread started when the object is created.

(kmock on PyPI is asyncio/aiohttp-based and needs kubernetes>=37 for its fetch extra;
a threaded http.server keeps the synchronous client and the tests simple.)
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlparse

import yaml

TOKEN = "fake-token"
_ROUTES = {
    "jobs": ("batch", "v1", "Job"),
    "pytorchjobs": ("kubeflow.org", "v1", "PyTorchJob"),
    "trainjobs": ("trainer.kubeflow.org", "v1alpha1", "TrainJob"),
    "rayjobs": ("ray.io", "v1", "RayJob"),
}
# Where each kind keeps its suspend flag (Kueue flips it to queue, admit and preempt).
_SUSPEND = {"jobs": ("spec",), "pytorchjobs": ("spec", "runPolicy"), "trainjobs": ("spec",), "rayjobs": ("spec",)}
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _status(code: int, reason: str, message: str, details: Optional[dict] = None) -> dict:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}
    if details is not None:
        body["details"] = details
    return body


def _matches(labels: dict, selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class FakeCluster:
    def __init__(self) -> None:
        self.namespaces = {"default"}
        # (namespace, name) -> access modes; the default claims exist, shareable across nodes.
        self.claims: dict[tuple[str, str], list[str]] = {
            ("default", "aegis-outputs"): ["ReadWriteMany"], ("default", "aegis-dataset-cache"): ["ReadWriteMany"]}
        self.nodes = ["node-a", "node-b"]
        self.crd_installed = True
        self.objects: dict[tuple[str, str, str], dict] = {}  # (plural, ns, name)
        self.pods: dict[tuple[str, str], dict] = {}
        self.events: list[dict] = []
        self.logs: dict[tuple[str, str], list[str]] = {}  # (pod, container start) -> lines
        self.deleted: list[tuple[str, str, str, Optional[str]]] = []  # (plural, ns, name, propagation)
        self.delete_bodies: list[dict] = []  # each DELETE's DeleteOptions, as sent
        self.requests: list[tuple[str, str]] = []
        self.reject_token = False  # 401
        self.forbid: set[str] = set()  # verbs ("create") or "<verb> <resource>" ("get persistentvolumeclaims"): 403
        self.on_create: Optional[Callable[["FakeCluster", str, dict], None]] = None
        # Kueue's mutating webhook: an object created with the queue-name label is suspended
        # (jobframework.ApplyDefaultForSuspend), and its controller reports it Suspended.
        self.kueue = False
        self._rv = itertools.count(1)
        self._changed = threading.Condition()
        self._server: Optional[ThreadingHTTPServer] = None
        self.threads: list[threading.Thread] = []

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "FakeCluster":
        cluster = self

        class Handler(_Handler):
            fake = cluster

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll: shutdown() waits up to one poll interval (0.5 s by default, at every test's teardown).
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def write_kubeconfig(self, path: Path, context: str = "fake") -> Path:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": TOKEN}}],
            "contexts": [{"name": context, "context": {"cluster": "fake", "user": "fake"}}],
        }))
        return path

    def run(self, fn: Callable[[], None]) -> None:
        """Run a scenario step in the background (e.g. from ``on_create``)."""
        t = threading.Thread(target=fn, daemon=True)
        t.start()
        self.threads.append(t)

    # ------------------------------------------------------------ state changes

    def _touch(self, obj: dict) -> None:
        obj["metadata"]["resourceVersion"] = str(next(self._rv))

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def get(self, plural: str, name: str, ns: str = "default") -> Optional[dict]:
        return self.objects.get((plural, ns, name))

    def set_status(self, plural: str, name: str, status: dict, ns: str = "default") -> None:
        obj = self.objects[(plural, ns, name)]
        obj["status"] = status
        self._touch(obj)
        self._notify()

    def suspend(self, plural: str, name: str, suspended: bool = True, ns: str = "default", *,
                condition: bool = True) -> None:
        """Set the object's suspend flag, as Kueue does to hold, admit or preempt it; with
        ``condition`` its controller's ``Suspended`` condition follows (JobSuspended/JobResumed)."""
        obj = self.objects[(plural, ns, name)]
        _suspend_flag(plural, obj, suspended)
        if condition:
            self._suspended_condition(obj, suspended)
        self._touch(obj)
        self._notify()

    @staticmethod
    def _suspended_condition(obj: dict, suspended: bool) -> None:
        conditions = obj.setdefault("status", {}).setdefault("conditions", [])
        conditions[:] = [c for c in conditions if c.get("type") != "Suspended"]
        conditions.append({"type": "Suspended", "status": "True" if suspended else "False",
                           "reason": "JobSuspended" if suspended else "JobResumed",
                           "message": "Job suspended" if suspended else "Job resumed",
                           "lastTransitionTime": _now(), "lastProbeTime": _now()})

    def delete_pod(self, name: str, ns: str = "default") -> None:
        """The pod is gone (a suspended job's controller deletes its pods)."""
        del self.pods[(ns, name)]
        self._notify()

    def add_pod(self, name: str, labels: dict, container: str, ns: str = "default", *, image: str = "x",
                env: Optional[dict] = None, memory_limit: Optional[str] = None) -> dict:
        """A pod as its controller creates it; ``env`` and ``memory_limit`` as its template had them
        (plus what the controller injects, e.g. the Training Operator's ``PET_*``)."""
        spec_container: dict = {"name": container, "image": image}
        if env:
            spec_container["env"] = [{"name": k, "value": str(v)} for k, v in env.items()]
        if memory_limit:
            spec_container["resources"] = {"limits": {"memory": memory_limit}, "requests": {"memory": memory_limit}}
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "labels": labels,
                            "creationTimestamp": _now()},
               "spec": {"containers": [spec_container]},
               "status": {"phase": "Pending", "containerStatuses": [
                   {"name": container, "ready": False, "restartCount": 0, "image": image, "imageID": "",
                    "state": {"waiting": {"reason": "ContainerCreating"}}}]}}
        self._touch(pod)
        self.pods[(ns, name)] = pod
        self._notify()
        return pod

    def container_state(self, pod: str, state: dict, *, phase: Optional[str] = None, restart: bool = False,
                        last_state: Optional[dict] = None, ns: str = "default") -> None:
        p = self.pods[(ns, pod)]
        cs = p["status"]["containerStatuses"][0]
        if restart:
            cs["restartCount"] += 1
        cs["state"] = state
        if last_state is not None:
            cs["lastState"] = last_state
        if phase:
            p["status"]["phase"] = phase
        self._touch(p)
        self._notify()

    def pod_status(self, pod: str, ns: str = "default", **fields: Any) -> None:
        """Set fields of a pod's status (phase, reason, message, conditions), as the kubelet and
        the scheduler do: ``reason="Evicted"``, a ``PodScheduled`` condition that is False."""
        p = self.pods[(ns, pod)]
        p["status"].update(fields)
        self._touch(p)
        self._notify()

    def log(self, pod: str, *lines: str) -> None:
        key = (pod, self._start(pod))
        self.logs.setdefault(key, []).extend(lines)
        self._notify()

    def _start(self, pod: str, ns: str = "default") -> int:
        return self.pods[(ns, pod)]["status"]["containerStatuses"][0]["restartCount"]

    def event(self, kind: str, name: str, reason: str, message: str, type_: str = "Warning", ns: str = "default") -> None:
        uid = f"ev-{len(self.events)}"
        self.events.append({"apiVersion": "v1", "kind": "Event",
                            "metadata": {"name": f"{name}.{uid}", "namespace": ns, "uid": uid},
                            "involvedObject": {"kind": kind, "name": name, "namespace": ns},
                            "reason": reason, "message": message, "type": type_, "count": 1,
                            "firstTimestamp": _now(), "lastTimestamp": _now()})
        self._notify()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10) -> bool:
        end = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.1))
        return True


def _suspend_flag(plural: str, obj: dict, suspended: bool) -> None:
    where = obj
    for key in _SUSPEND[plural]:
        where = where.setdefault(key, {})
    where["suspend"] = suspended


class _Handler(BaseHTTPRequestHandler):
    fake: FakeCluster
    # HTTP/1.1 with chunked streams, as the API server sends watches and followed logs
    # (clients see each line as it is written); one request per connection.
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    # ------------------------------------------------------------ plumbing

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _begin_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}") if length else {}

    def _auth(self, verb: str, resource: str = "jobs") -> bool:
        if self.fake.reject_token or self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(401, _status(401, "Unauthorized", "Unauthorized"))
            return False
        if verb in self.fake.forbid or f"{verb} {resource}" in self.fake.forbid:
            self._send(403, _status(403, "Forbidden", f'{resource} is forbidden: User "fake" cannot {verb} resource'))
            return False
        return True

    def _dispatch(self, method: str) -> None:
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.fake.requests.append((method, self.path))
        m = re.fullmatch(r"/apis/([^/]+/[^/]+)/namespaces/([^/]+)/([^/]+)(?:/([^/]+))?", url.path)
        if m and m.group(3) in _ROUTES and m.group(1) == "/".join(_ROUTES[m.group(3)][:2]):
            _, ns, plural, name = m.groups()
            if plural != "jobs" and not self.fake.crd_installed:
                return self._send(404, _status(404, "NotFound", "the server could not find the requested resource",
                                               {}))
            return self._objects(method, ns, plural, name, q)
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods(?:/([^/]+)(/log)?)?", url.path)
        if m and method == "GET":
            ns, name, is_log = m.groups()
            if not self._auth("get"):
                return None
            if is_log:
                return self._log(ns, name, q)
            pods = [copy.deepcopy(p) for (pns, _), p in list(self.fake.pods.items())
                    if pns == ns and _matches(p["metadata"].get("labels", {}), q.get("labelSelector", ""))]
            return self._send(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": pods})
        if url.path == "/api/v1/nodes" and method == "GET":
            if not self._auth("list", "nodes"):
                return None
            items = [{"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}} for n in self.fake.nodes]
            return self._send(200, {"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": items})
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)(?:/persistentvolumeclaims/([^/]+))?", url.path)
        if m and method == "GET":
            return self._namespaced(*m.groups())
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/events", url.path)
        if m and method == "GET":
            if not self._auth("list"):
                return None
            wanted = q.get("fieldSelector", "").partition("involvedObject.name=")[2]
            items = [e for e in list(self.fake.events)
                     if e["metadata"]["namespace"] == m.group(1) and (not wanted or e["involvedObject"]["name"] == wanted)]
            return self._send(200, {"kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": items})
        self._send(404, _status(404, "NotFound", "the server could not find the requested resource"))

    def _namespaced(self, ns: str, claim: Optional[str]) -> None:
        """A namespace, or a claim in one. As the API server does, reading a claim in a namespace
        that does not exist is a 404 of the claim, not of the namespace."""
        fake = self.fake
        if not self._auth("get", "persistentvolumeclaims" if claim else "namespaces"):
            return None
        if claim is None:
            if ns not in fake.namespaces:
                return self._send(404, _status(404, "NotFound", f'namespaces "{ns}" not found',
                                               {"name": ns, "kind": "namespaces"}))
            return self._send(200, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns},
                                    "status": {"phase": "Active"}})
        modes = fake.claims.get((ns, claim)) if ns in fake.namespaces else None
        if modes is None:
            return self._send(404, _status(404, "NotFound", f'persistentvolumeclaims "{claim}" not found',
                                           {"name": claim, "kind": "persistentvolumeclaims"}))
        return self._send(200, {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "namespace": ns, "uid": f"uid-{claim}"},
            "spec": {"accessModes": modes, "resources": {"requests": {"storage": "20Gi"}}},
            "status": {"phase": "Bound", "accessModes": modes, "capacity": {"storage": "20Gi"}}})

    def _objects(self, method: str, ns: str, plural: str, name: Optional[str], q: dict) -> None:
        fake = self.fake
        group, version, kind = _ROUTES[plural]
        verb = {"POST": "create", "DELETE": "delete"}.get(method, "watch" if q.get("watch") else "get")
        if not self._auth(verb):
            return None
        if ns not in fake.namespaces:
            return self._send(404, _status(404, "NotFound", f'namespaces "{ns}" not found',
                                           {"name": ns, "kind": "namespaces"}))
        if method == "POST":
            body = self._body()
            key = (plural, ns, body["metadata"]["name"])
            if key in fake.objects:
                return self._send(409, _status(409, "AlreadyExists", f'{plural}.{group} "{key[2]}" already exists',
                                               {"name": key[2], "group": group, "kind": plural}))
            obj = copy.deepcopy(body)
            obj["metadata"].update(uid=f"uid-{key[2]}", creationTimestamp=_now())
            obj["status"] = {}
            if fake.kueue and KUEUE_QUEUE_LABEL in (obj["metadata"].get("labels") or {}):
                _suspend_flag(plural, obj, True)
                fake._suspended_condition(obj, True)
            if q.get("dryRun") == "All":
                return self._send(201, obj)
            fake._touch(obj)
            fake.objects[key] = obj
            fake._notify()
            if fake.on_create:
                fake.on_create(fake, plural, obj)
            return self._send(201, obj)
        if method == "DELETE":
            key = (plural, ns, name)
            if key not in fake.objects:
                return self._send(404, _status(404, "NotFound", f'{plural} "{name}" not found',
                                               {"name": name, "kind": plural}))
            body = self._body()
            fake.delete_bodies.append(body)
            wanted_uid = (body.get("preconditions") or {}).get("uid")
            if wanted_uid and wanted_uid != fake.objects[key]["metadata"].get("uid"):
                return self._send(409, _status(409, "Conflict", "Precondition failed: UID in precondition: "
                                               f"{wanted_uid}, UID in object meta: {fake.objects[key]['metadata'].get('uid')}",
                                               {"name": name, "kind": plural}))
            fake.deleted.append((plural, ns, name, body.get("propagationPolicy")))
            del fake.objects[key]
            fake._notify()
            return self._send(200, _status(200, "", "") | {"status": "Success"})
        if name:
            obj = fake.objects.get((plural, ns, name))
            if obj is None:
                return self._send(404, _status(404, "NotFound", f'{plural} "{name}" not found',
                                               {"name": name, "kind": plural}))
            return self._send(200, obj)
        wanted = q.get("fieldSelector", "").partition("metadata.name=")[2]

        def current() -> list[dict]:
            return [copy.deepcopy(o) for (p, n, oname), o in list(fake.objects.items())
                    if p == plural and n == ns and (not wanted or oname == wanted)]

        if not q.get("watch"):
            return self._send(200, {"kind": f"{kind}List", "apiVersion": f"{group}/{version}",
                                    "metadata": {"resourceVersion": "1"}, "items": current()})
        self._watch(current, float(q.get("timeoutSeconds", 5)))

    def _watch(self, current: Callable[[], list[dict]], timeout: float) -> None:
        self._begin_stream("application/json")
        seen: dict[str, str] = {}
        end = time.monotonic() + timeout
        try:
            while True:
                objs = {o["metadata"]["name"]: o for o in current()}
                for name, obj in objs.items():
                    rv = obj["metadata"]["resourceVersion"]
                    if seen.get(name) != rv:
                        kind = "ADDED" if name not in seen else "MODIFIED"
                        seen[name] = rv
                        self._chunk((json.dumps({"type": kind, "object": obj}) + "\n").encode())
                for name in [n for n in seen if n not in objs]:
                    self._chunk((json.dumps({"type": "DELETED", "object": {"metadata": {"name": name}}}) + "\n").encode())
                    del seen[name]
                left = end - time.monotonic()
                if left <= 0:
                    return self._end_stream()
                with self.fake._changed:
                    self.fake._changed.wait(min(left, 0.2))
        except (BrokenPipeError, ConnectionResetError):
            return

    def _log(self, ns: str, pod: str, q: dict) -> None:
        fake = self.fake
        p = fake.pods.get((ns, pod))
        if p is None:
            return self._send(404, _status(404, "NotFound", f'pods "{pod}" not found', {"name": pod, "kind": "pods"}))
        cs = p["status"]["containerStatuses"][0]
        if q.get("previous", "").lower() == "true":  # the start before the current one, as it ended
            if not cs["restartCount"]:
                return self._send(400, _status(400, "BadRequest", f'previous terminated container "{cs["name"]}" '
                                               f'in pod "{pod}" not found'))
            lines = fake.logs.get((pod, cs["restartCount"] - 1), [])
            return self._send_lines(lines[-int(q["tailLines"]):] if "tailLines" in q else lines)
        if "waiting" in cs["state"]:
            return self._send(400, _status(400, "BadRequest",
                                           f'container "{cs["name"]}" in pod "{pod}" is waiting to start'))
        start = cs["restartCount"]
        key = (pod, start)
        if "tailLines" in q and q.get("follow", "").lower() != "true":
            return self._send_lines(fake.logs.get(key, [])[-int(q["tailLines"]):])
        self._begin_stream("text/plain")
        sent = 0
        try:
            while True:
                lines = fake.logs.get(key, [])
                for line in lines[sent:]:
                    self._chunk((line + "\n").encode())
                sent = len(lines)
                cs = p["status"]["containerStatuses"][0]
                gone = fake.pods.get((ns, pod)) is not p  # deleted: its container is stopped
                ended = cs["restartCount"] != start or "terminated" in cs["state"] or gone
                if q.get("follow", "").lower() != "true" or ended:
                    if len(fake.logs.get(key, [])) == sent:
                        return self._end_stream()
                    continue
                with fake._changed:
                    fake._changed.wait(0.2)
        except (BrokenPipeError, ConnectionResetError):
            return

    def _send_lines(self, lines: list[str]) -> None:
        self._begin_stream("text/plain")
        for line in lines:
            self._chunk((line + "\n").encode())
        self._end_stream()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")
