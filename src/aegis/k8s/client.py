"""The kubernetes-client calls Aegis makes, with API failures as one-sentence errors.

Imported only when a job is submitted or followed: the render and dry-run path never
loads the client. Objects are handled as plain dicts (``sanitize_for_serialization``)
so the Job and the PyTorchJob (a custom object) look alike to ``follow``.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterator, Optional

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError as Urllib3Error

from aegis.errors import AegisError

GROUP, VERSION, PLURAL = "kubeflow.org", "v1", "pytorchjobs"


class ClusterError(AegisError):
    """The cluster refused or could not be reached; the message says what to do."""


def _reason(exc: ApiException) -> tuple[str, dict[str, Any]]:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    return str(body.get("message") or exc.reason or "").strip(), body


def api_error(exc: ApiException, *, action: str, kind: str, name: str, namespace: str, context: str) -> ClusterError:
    """One sentence per failure a user meets: credentials, RBAC, namespace, CRD, name clash."""
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
    if exc.status == 404 and kind == "PyTorchJob" and details.get("kind") in (None, "", PLURAL) and not details.get("name"):
        return ClusterError(
            f"kube context {context} has no PyTorchJob API (kubeflow.org/v1 pytorchjobs, 404): install the Kubeflow "
            "Training Operator v1 (kubectl apply --server-side -k "
            "\"github.com/kubeflow/trainer.git/manifests/overlays/standalone?ref=v1.9.4\") or use launcher=k8s-job."
        )
    if exc.status == 404:
        return ClusterError(f"{kind} {namespace}/{name} was not found in kube context {context} (404: {message}).")
    if exc.status == 409:
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
        self.batch = client.BatchV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)

    def _load(self, context: Optional[str]) -> client.ApiClient:
        configuration = client.Configuration()
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
            try:
                config.load_incluster_config(client_configuration=configuration)
                self.context = "in-cluster"
                return client.ApiClient(configuration)
            except ConfigException:
                where = os.environ.get("KUBECONFIG", "~/.kube/config")
                raise ClusterError(
                    f"no Kubernetes context: no usable kubeconfig at {where} and not running in a cluster; "
                    "create one (e.g. kind create cluster) or set launcher.context, or use launcher.dry_run=true."
                ) from None

    def _call(self, fn, *args, action: str, kind: str, name: str, namespace: str, **kwargs) -> Any:
        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            raise api_error(exc, action=action, kind=kind, name=name, namespace=namespace, context=self.context) from None
        except Urllib3Error as exc:
            host = self.api_client.configuration.host
            raise ClusterError(
                f"cannot reach the API server {host} of kube context {self.context}: {type(exc).__name__}; "
                "check the cluster is running and launcher.context."
            ) from None

    def plain(self, obj: Any) -> dict[str, Any]:
        return obj if isinstance(obj, dict) else self.api_client.sanitize_for_serialization(obj)

    # --------------------------------------------------------------- the object

    def create(self, manifest: dict[str, Any], *, server_dry_run: bool = False) -> dict[str, Any]:
        kind, meta = manifest["kind"], manifest["metadata"]
        kw = {"dry_run": "All"} if server_dry_run else {}
        where = dict(action="create", kind=kind, name=meta["name"], namespace=meta["namespace"])
        if kind == "Job":
            obj = self._call(self.batch.create_namespaced_job, meta["namespace"], manifest, **where, **kw)
        else:
            obj = self._call(self.custom.create_namespaced_custom_object, GROUP, VERSION, meta["namespace"], PLURAL,
                             manifest, **where, **kw)
        return self.plain(obj)

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
        where = dict(action="read", kind=kind, name=name, namespace=namespace)
        if kind == "Job":
            return self.plain(self._call(self.batch.read_namespaced_job, name, namespace, **where))
        return self.plain(self._call(self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL,
                                     name, **where))

    def watch(self, kind: str, name: str, namespace: str, timeout_s: int) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event type, object) as the object changes, for up to ``timeout_s`` seconds."""
        w = watch.Watch()
        if kind == "Job":
            fn, args = self.batch.list_namespaced_job, (namespace,)
        else:
            fn, args = self.custom.list_namespaced_custom_object, (GROUP, VERSION, namespace, PLURAL)
        where = dict(action="watch", kind=kind, name=name, namespace=namespace)
        try:
            for event in w.stream(fn, *args, field_selector=f"metadata.name={name}", timeout_seconds=timeout_s):
                yield event["type"], self.plain(event["object"])
        except ApiException as exc:
            raise api_error(exc, context=self.context, **where) from None
        finally:
            w.stop()

    def delete(self, kind: str, name: str, namespace: str) -> None:
        """Delete with background propagation: the Job's pods go with it, none orphaned."""
        body = client.V1DeleteOptions(propagation_policy="Background")
        where = dict(action="delete", kind=kind, name=name, namespace=namespace)
        if kind == "Job":
            self._call(self.batch.delete_namespaced_job, name, namespace, body=body, **where)
        else:
            self._call(self.custom.delete_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name,
                       body=body, **where)

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

    def stream_logs(self, pod: str, namespace: str, container: str, since_seconds: Optional[int] = None) -> Iterator[str]:
        """Lines of a container's log, following until the container stops."""
        kw: dict[str, Any] = {"container": container, "follow": True, "_preload_content": False}
        if since_seconds is not None:
            kw["since_seconds"] = since_seconds
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
