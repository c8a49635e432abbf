"""The kubernetes-client calls Aegis makes, with API failures as one-sentence errors.

Imported only when a cluster is contacted: the render and dry-run path never loads the
client. Every kind goes through the custom-objects API (it serves built-in groups too:
/apis/batch/v1/namespaces/{ns}/jobs), so objects arrive as plain dicts and one code path,
parameterised by a ``Kind``, serves the Job, the PyTorchJob and whatever kind comes next.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterator, Optional

from aegis.errors import AegisError

try:
    from kubernetes import client, config, watch
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException
except ImportError as exc:  # the `k8s` extra: submit-side only, so the training image has none
    if not (exc.name or "").startswith("kubernetes"):
        raise
    from aegis.core.registry import LAUNCHERS  # the launchers that submit a Kubernetes kind

    _kubernetes = ", ".join(f"launcher={name}" for name, entry in LAUNCHERS.items() if entry.kind)
    raise AegisError(f"{_kubernetes} need the Kubernetes client, which is not installed: "
                     "pip install 'aegis[k8s]'.") from None
from urllib3.exceptions import HTTPError as Urllib3Error

from aegis.k8s.kinds import Kind, kind_of

IN_CLUSTER = "in-cluster"  # the context name recorded for the pod's service account
GONE = object()  # what a call with missing_ok=True returns for an object that no longer exists


class ClusterError(AegisError):
    """The cluster refused or could not be reached; the message says what to do.

    ``status`` is the API server's HTTP status when it answered (403: a caller may treat a
    check it lacks permission for as skipped rather than failed)."""

    status: Optional[int] = None


def _reason(exc: ApiException) -> tuple[str, dict[str, Any]]:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    return str(body.get("message") or exc.reason or "").strip(), body


def _object_missing(exc: ApiException, name: str) -> bool:
    """A 404 about the named object itself, not its namespace or its API."""
    details = _reason(exc)[1].get("details") or {}
    return exc.status == 404 and details.get("name") == name and details.get("kind") != "namespaces"


def api_error(exc: ApiException, *, action: str, kind: str, name: str, namespace: str, context: str,
              api: Optional[Kind] = None) -> ClusterError:
    """One sentence per failure a user meets: credentials, RBAC, namespace, CRD, name clash.

    ``api`` is the kind whose endpoint was called, so a 404 of the API itself (its CRD not
    installed) can say what to install.
    """
    error = _api_error(exc, action=action, kind=kind, name=name, namespace=namespace, context=context, api=api)
    error.status = exc.status
    return error


def _api_error(exc: ApiException, *, action: str, kind: str, name: str, namespace: str, context: str,
               api: Optional[Kind]) -> ClusterError:
    message, body = _reason(exc)
    details = body.get("details") or {}
    if exc.status == 401:
        return ClusterError(
            f"the API server of kube context {context} refused the credentials (401 Unauthorized): "
            "refresh them (log in again) or choose another context with launcher.context."
        )
    if exc.status == 403:
        return ClusterError(
            f"kube context {context} may not {action} {kind}s in namespace {namespace} (403 Forbidden: {message}): "
            "ask for RBAC permission or set launcher.namespace to one you may use."
        )
    if exc.status == 404 and details.get("kind") == "namespaces":
        return ClusterError(
            f"launcher.namespace={namespace} does not exist in kube context {context}: create it "
            f"(kubectl create namespace {namespace}) or set launcher.namespace."
        )
    if (exc.status == 404 and api is not None and api.missing_api_hint
            and details.get("kind") in (None, "", api.plural) and not details.get("name")):
        return ClusterError(
            f"kube context {context} has no {api.name} API ({api.api_version} {api.plural}, 404): "
            f"{api.missing_api_hint}."
        )
    if exc.status == 404:
        return ClusterError(f"{kind} {namespace}/{name} was not found in kube context {context} (404: {message}).")
    if exc.status == 409 and action == "create":
        return ClusterError(
            f"a {kind} named {name} already exists in namespace {namespace}: set launcher.job_name to a new name, "
            f"or delete the old one (kubectl delete {kind.lower()} {name} -n {namespace})."
        )
    if exc.status == 422:
        return ClusterError(f"the API server refused the {kind} {name} as invalid (422): {message}.")
    return ClusterError(f"the API server answered {exc.status} {exc.reason} to {action} {kind} {namespace}/{name}: {message}.")


class Cluster:
    """One kube context (or the in-cluster service account) and the calls Aegis needs."""

    def __init__(self, context: Optional[str] = None):
        self.context = context or "(current)"
        self.api_client = self._load(context)
        self.core = client.CoreV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)

    def _load(self, context: Optional[str]) -> client.ApiClient:
        configuration = client.Configuration()
        if context == IN_CLUSTER:  # recorded by a submission from inside a pod
            return self._in_cluster(configuration, context)
        # $KUBECONFIG read now, not when the client was imported.
        kubeconfig = os.environ.get("KUBECONFIG") or None
        try:
            config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
            if context is None:
                _, active = config.list_kube_config_contexts(config_file=kubeconfig)
                self.context = active.get("name", self.context)
            return client.ApiClient(configuration)
        except ConfigException as kube_exc:
            if context is not None:
                raise ClusterError(
                    f"launcher.context={context} cannot be used: {kube_exc}. List contexts with "
                    "kubectl config get-contexts."
                ) from None
            return self._in_cluster(configuration, context)

    def _in_cluster(self, configuration: client.Configuration, context: Optional[str]) -> client.ApiClient:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except ConfigException:
            if context == IN_CLUSTER:
                raise ClusterError(
                    "this job was submitted from inside a cluster (its service account) and can only be "
                    "reached from a pod of that cluster."
                ) from None
            where = os.environ.get("KUBECONFIG", "~/.kube/config")
            raise ClusterError(
                f"no Kubernetes context: no usable kubeconfig at {where} and not running in a cluster; "
                "create one (e.g. kind create cluster) or set launcher.context, or use launcher.dry_run=true."
            ) from None
        self.context = IN_CLUSTER
        return client.ApiClient(configuration)

    def _call(self, fn, *args, action: str, kind: str, name: str, namespace: str, api: Optional[Kind] = None,
              missing_ok: bool = False, **kwargs) -> Any:
        """``fn(...)`` with API failures as one sentence; ``GONE`` when the object no longer exists
        and ``missing_ok``."""
        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            if missing_ok and _object_missing(exc, name):
                return GONE
            raise api_error(exc, action=action, kind=kind, name=name, namespace=namespace, context=self.context,
                            api=api) from None
        except Urllib3Error as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: BaseException) -> ClusterError:
        host = self.api_client.configuration.host
        return ClusterError(
            f"cannot reach the API server {host} of kube context {self.context}: {type(exc).__name__}; "
            "check the cluster is running and launcher.context."
        )

    def plain(self, obj: Any) -> dict[str, Any]:
        return obj if isinstance(obj, dict) else self.api_client.sanitize_for_serialization(obj)

    # --------------------------------------------------------------- the object

    @staticmethod
    def _where(action: str, kind: Kind, name: str, namespace: str) -> dict[str, Any]:
        return dict(action=action, kind=kind.name, name=name, namespace=namespace, api=kind)

    def create(self, manifest: dict[str, Any], *, server_dry_run: bool = False) -> dict[str, Any]:
        kind, meta = kind_of(manifest["kind"]), manifest["metadata"]
        kw = {"dry_run": "All"} if server_dry_run else {}
        obj = self._call(self.custom.create_namespaced_custom_object, kind.group, kind.version, meta["namespace"],
                         kind.plural, manifest, **self._where("create", kind, meta["name"], meta["namespace"]), **kw)
        return self.plain(obj)

    def get(self, kind: Kind, name: str, namespace: str, *, missing_ok: bool = False) -> Optional[dict[str, Any]]:
        """The object; None when it no longer exists and ``missing_ok``."""
        obj = self._call(self.custom.get_namespaced_custom_object, kind.group, kind.version, namespace, kind.plural,
                         name, missing_ok=missing_ok, **self._where("read", kind, name, namespace))
        return None if obj is GONE else self.plain(obj)

    def watch(self, kind: Kind, name: str, namespace: str, timeout_s: int) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event type, object) as the object changes, for up to ``timeout_s`` seconds."""
        w = watch.Watch()
        where = self._where("watch", kind, name, namespace)
        try:
            for event in w.stream(self.custom.list_namespaced_custom_object, kind.group, kind.version, namespace,
                                  kind.plural, field_selector=f"metadata.name={name}", timeout_seconds=timeout_s):
                yield event["type"], self.plain(event["object"])
        except ApiException as exc:
            raise api_error(exc, context=self.context, **where) from None
        except Urllib3Error as exc:
            raise self._unreachable(exc) from None
        finally:
            w.stop()

    def delete(self, kind: Kind, name: str, namespace: str, *, uid: str, missing_ok: bool = False) -> bool:
        """Delete with background propagation: the object's pods go with it, none orphaned.

        ``uid`` (required) makes the API server refuse (409) if another object has taken the
        name: Aegis deletes only the object it created. False when it was already gone and
        ``missing_ok``.
        """
        if not uid:
            raise ClusterError(f"refusing to delete {kind.name} {namespace}/{name} without its uid: Aegis deletes "
                               "only the object it created, named by uid.")
        preconditions = client.V1Preconditions(uid=uid)
        body = client.V1DeleteOptions(propagation_policy="Background", preconditions=preconditions)
        gone = self._call(self.custom.delete_namespaced_custom_object, kind.group, kind.version, namespace, kind.plural,
                          name, body=body, missing_ok=missing_ok, **self._where("delete", kind, name, namespace))
        return gone is not GONE

    # ---------------------------------------------------- namespace, volume claims

    def namespace(self, namespace: str) -> None:
        """Raise the one sentence for a namespace that does not exist; a 403 (many users may not
        read namespaces) says nothing either way."""
        try:
            self._call(self.core.read_namespace, namespace, action="read", kind="Namespace", name=namespace,
                       namespace=namespace)
        except ClusterError as exc:
            if exc.status != 403:
                raise

    def node_count(self) -> Optional[int]:
        """How many nodes the cluster has; None when this context may not list them (403)."""
        try:
            found = self._call(self.core.list_node, action="list", kind="Node", name="nodes", namespace="(cluster)")
        except ClusterError as exc:
            if exc.status == 403:
                return None
            raise
        return len(found.items)

    def claim(self, name: str, namespace: str) -> Optional[dict[str, Any]]:
        """The PersistentVolumeClaim; None when it does not exist."""
        obj = self._call(self.core.read_namespaced_persistent_volume_claim, name, namespace, missing_ok=True,
                         action="read", kind="PersistentVolumeClaim", name=name, namespace=namespace)
        return None if obj is GONE else self.plain(obj)

    # ------------------------------------------------------------- pods, events

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        where = dict(action="list", kind="Pod", name=selector, namespace=namespace)
        found = self._call(self.core.list_namespaced_pod, namespace, label_selector=selector, **where)
        return [self.plain(p) for p in found.items]

    def events(self, namespace: str, names: list[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for involved in names:
            where = dict(action="list", kind="Event", name=involved, namespace=namespace)
            found = self._call(self.core.list_namespaced_event, namespace,
                               field_selector=f"involvedObject.name={involved}", **where)
            out.extend(self.plain(e) for e in found.items)
        return out

    def stream_logs(self, pod: str, namespace: str, container: str, *, follow: bool = True,
                    since_seconds: Optional[int] = None, previous: bool = False,
                    tail_lines: Optional[int] = None) -> Iterator[str]:
        """Lines of a container's log; with ``follow``, until the container stops; ``previous``:
        of its start before the current one; ``tail_lines``: only the last so many."""
        kw: dict[str, Any] = {"container": container, "follow": follow, "_preload_content": False}
        if since_seconds is not None:
            kw["since_seconds"] = since_seconds
        if previous:
            kw["previous"] = True
        if tail_lines is not None:
            kw["tail_lines"] = tail_lines
        where = dict(action="read logs of", kind="Pod", name=pod, namespace=namespace)
        response = self._call(self.core.read_namespaced_pod_log, pod, namespace, **where, **kw)
        buffer = b""
        try:
            for chunk in response.stream(4096, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    yield line.decode("utf-8", "replace")
            if buffer:
                yield buffer.decode("utf-8", "replace")
        finally:
            response.release_conn()
