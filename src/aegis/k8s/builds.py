"""What ``docker/build.sh`` recorded about the images it built, read back by the launchers.

A tag can be re-pointed (a rebuild after a code change tags the same version), and a
node that cached the old image runs old code; the registry digest the build recorded
for a tag names exactly the image that was pushed, so the manifest pins it. The record
also says whether the image was built with CUDA, so a GPU request with a CPU image is
refused before a pod holds a GPU and trains on CPU, and which optional groups it holds, so a
RayJob on an image without Ray is refused before its head pod fails to start Ray, and which Ray,
so a RayJob tells KubeRay the version it probes.

The record is a convenience, never a requirement: a missing, unreadable or malformed
file, or an entry of the wrong shape, is simply no record. Plain JSON, no client, no torch.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

ENV = "AEGIS_IMAGES_FILE"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_REVISION = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # a SHA-1 or SHA-256 git object name
VERSION = re.compile(r"[0-9]+\.[0-9]+[0-9A-Za-z.+-]*")  # a release such as 2.60.0


@dataclass(frozen=True)
class Build:
    """One image as built: what ``docker/build.sh`` wrote for its tagged reference."""

    reference: str
    accelerator: Optional[str] = None  # "cpu" or "cuda"
    digest: Optional[str] = None  # the registry digest once pushed: sha256:<64 hex>
    revision: Optional[str] = None  # the git commit built (None: not built from a checkout)
    dirty: bool = False  # the checkout had uncommitted changes to what the image copies
    extras: Optional[frozenset[str]] = None  # the optional groups installed (None: a record from before they were)
    ray_version: Optional[str] = None  # the Ray installed in the image (None: no Ray, or not recorded)

    def pinned(self) -> Optional[str]:
        """``name:tag@sha256:...`` when the registry digest is known, else None."""
        if self.digest is None or "@" in self.reference:
            return None
        return f"{self.reference}@{self.digest}"


def records_file() -> Path:
    """``$AEGIS_IMAGES_FILE``, else ``${XDG_CACHE_HOME:-~/.cache}/aegis/images.json``."""
    explicit = os.environ.get(ENV)
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "aegis" / "images.json"


def _read() -> dict[str, Any]:
    try:
        data = json.loads(records_file().read_text())
    except (OSError, ValueError, RuntimeError):  # RuntimeError: Path.home() without a home
        return {}
    return data if isinstance(data, dict) else {}


def lookup(reference: Optional[str]) -> Optional[Build]:
    """What the build record says about ``reference`` (exactly as tagged), or None."""
    if not reference:
        return None
    entry = _read().get(str(reference))
    if not isinstance(entry, dict):
        return None
    accelerator = entry.get("accelerator")
    digest = entry.get("digest")
    revision = entry.get("revision")
    extras = entry.get("extras")
    ray_version = entry.get("ray_version")
    return Build(
        reference=str(reference),
        accelerator=accelerator if accelerator in ("cpu", "cuda") else None,
        digest=digest if isinstance(digest, str) and _DIGEST.fullmatch(digest) else None,
        revision=revision if isinstance(revision, str) and _REVISION.fullmatch(revision) else None,
        dirty=entry.get("dirty") is True,
        extras=frozenset(extras) if isinstance(extras, list) and all(isinstance(e, str) for e in extras) else None,
        ray_version=ray_version if isinstance(ray_version, str) and VERSION.fullmatch(ray_version) else None,
    )


def newest() -> Optional[str]:
    """The reference docker/build.sh recorded last (for benchmarks and examples), or None."""
    records = {ref: entry for ref, entry in _read().items() if isinstance(entry, dict)}
    return max(records, key=lambda ref: str(records[ref].get("built_at", "")), default=None)


@contextlib.contextmanager
def ignored() -> Iterator[None]:
    """No record is read while active: output that must not depend on this machine's builds
    (the checked-in manifests of ``aegis.generate``)."""
    before = os.environ.get(ENV)
    os.environ[ENV] = os.devnull
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before
