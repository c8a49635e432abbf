"""What only the submitting machine knows of a cluster job, on its tracked MLflow run.

A pod cannot read the manifest it was rendered from (it lives beside ``job.json`` in the run
dir on the submitting machine) nor the digest its image resolved to
(``status.containerStatuses[].imageID``: not in the downward API, and pods get no API access).
The follower can: when the job ends, where the pods track to a store this machine reaches as
well (the rule of ``aegis.failures.tags``: a server, or a path that exists here), it logs the
manifest as an artifact (``lineage/<kind>.yaml``) and tags the image IDs the pods ran. Elsewhere
(the embedded store on the outputs volume) ``aegis show`` names the local manifest instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from aegis.failures.tags import reachable, tracked_runs
from aegis.k8s.kinds import Kind

MANIFEST_TAG = "aegis.launch.manifest"  # the artifact's path, once logged
IMAGE_ID_TAG = "aegis.image.id"  # what the kubelet resolved the image to (registry@sha256:...)


def image_ids(kind: Kind, pods: list[dict[str, Any]]) -> list[str]:
    """The distinct image IDs the training containers of ``pods`` ran, as the kubelet reports them."""
    found = set()
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if status.get("name") == kind.container and status.get("imageID"):
                found.add(str(status["imageID"]))
    return sorted(found)


def record(where: Optional[dict[str, Any]], run_id: Optional[str], manifest: Optional[Path], kind: Kind,
           pods: list[dict[str, Any]]) -> Optional[str]:
    """Log the manifest and tag the image IDs on the job's runs; a line for the terminal, or None
    when there is nothing to record from here."""
    if not reachable(where, run_id):
        return None
    ids = image_ids(kind, pods)
    manifest = manifest if manifest is not None and manifest.is_file() else None
    if manifest is None and not ids:
        return None
    try:
        client, runs = tracked_runs(where, run_id)  # type: ignore[arg-type]
        for run in runs:
            if manifest is not None and MANIFEST_TAG not in run.data.tags:  # a resumed job's is kept
                client.log_artifact(run.info.run_id, str(manifest), "lineage")
                client.set_tag(run.info.run_id, MANIFEST_TAG, f"lineage/{manifest.name}")
            if ids:
                client.set_tag(run.info.run_id, IMAGE_ID_TAG, ", ".join(ids))
    except Exception as exc:  # the job's outcome stands; say why its record is short
        said = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        return f"could not record the manifest and image on the MLflow run: {said}"
    if not runs:
        return None
    what = [f"manifest lineage/{manifest.name}"] if manifest is not None else []
    what += [f"{IMAGE_ID_TAG}={', '.join(ids)}"] if ids else []
    return f"MLflow run {', '.join(r.info.run_id for r in runs)}: recorded {' and '.join(what)}"
