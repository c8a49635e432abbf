"""The rendered Job against the official Kubernetes schema (and a name the API accepts)."""

from __future__ import annotations

from typing import Any

from aegis.errors import ConfigError
from aegis.k8s import naming
from aegis.k8s.validate import schema_check


def validate_job(manifest: dict[str, Any]) -> None:
    name = manifest["metadata"]["name"]
    if not naming.is_dns_1123_label(name):
        raise ConfigError(f"launcher.job_name={name!r} is not a valid Job name: expected a DNS-1123 label.")
    schema_check(manifest, "Job")
