"""Check rendered objects against the official Kubernetes schemas before they are printed,
written or submitted.

``schema_check`` runs kubernetes-validate (strict, so a misspelt field is an error;
offline). It does not know CRDs: a launcher of a custom kind checks each pod template as
a core/v1 PodTemplate and its own fields itself (in its folder under ``aegis.launch``).
Any failure is a ``ConfigError``: one sentence, naming the config key that produced the
field where one did.
"""

from __future__ import annotations

from typing import Any

from aegis.errors import ConfigError

# The Kubernetes minor version whose schemas manifests must satisfy: the oldest one
# Aegis supports, so a manifest that passes runs on every newer cluster too.
KUBERNETES_VERSION = "1.31"

# Where a field in the pod spec came from, for the error message.
_FIELD_KEYS = {
    "tolerations": "launcher.tolerations",
    "nodeSelector": "launcher.node_selector",
    "resources": "launcher.resources",
    "env": "launcher.env / launcher.secret_env",
    "envFrom": "launcher.env_from",
    "imagePullSecrets": "launcher.image_pull_secrets",
    "serviceAccountName": "launcher.service_account",
    "volumes": "launcher.outputs / launcher.dataset_cache / launcher.shm_size",
    "volumeMounts": "launcher.outputs / launcher.dataset_cache",
    "securityContext": "launcher.security",
    "labels": "launcher.labels",
    "annotations": "launcher.annotations",
    "image": "launcher.image",
    "backoffLimit": "launcher.backoff_limit",
    "activeDeadlineSeconds": "launcher.active_deadline_seconds",
    "ttlSecondsAfterFinished": "launcher.ttl_seconds_after_finished",
}


def _config_key(path: list[Any]) -> str:
    for part in reversed(path):
        if part in _FIELD_KEYS:
            return _FIELD_KEYS[part]
    return "the launcher config"


def schema_check(obj: dict[str, Any], what: str) -> None:
    try:
        import kubernetes_validate  # ~0.1 s; only when a manifest is rendered
    except ImportError as exc:  # the `k8s` extra: submit-side only, so the training image has none
        if not (exc.name or "").startswith("kubernetes"):
            raise
        raise ConfigError(f"checking the rendered {what} against the Kubernetes schemas needs "
                          "kubernetes-validate, which is not installed: pip install 'aegis[k8s]'.") from None

    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = list(exc.absolute_path)
        where = ".".join(str(p) for p in path) or "(top level)"
        message = exc.message
        raise ConfigError(
            f"the rendered {what} fails the Kubernetes {KUBERNETES_VERSION} schema at {where} "
            f"({message}): check {_config_key(path)}."
        ) from None


