"""What a cache entry is made of, and the name it is stored under.

The name is a hash of everything that changes the decoded arrays (kind, source, pinned
checksum, decode options), so it is known from the config alone: looking an entry up
never needs the network. Storage options (an endpoint, a region) do not change the
content and are left out.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import urlsplit

from aegis.redact import mask_url_credentials

# Each kind's decode options: the data config keys that change the decoded arrays.
KIND_OPTIONS = {"image_folder": ("channels", "image_size"), "arrays": ("features_key", "labels_key")}
KINDS = tuple(KIND_OPTIONS)
# The data modules of each kind (aegis.training.datasets), for the torch-free side
# (the prefetch init container is rendered where torch may not be installed).
TARGET_KINDS = {"aegis.training.datasets.ImageFolderDataModule": "image_folder",
                "aegis.training.datasets.ArraysDataModule": "arrays"}
REMOTE_SCHEMES = ("http", "https", "s3", "gs", "gcs", "az", "abfs")
# data.max_bytes's default (schema.py's CachedDataConfig): the most bytes a source may hold,
# its download, its archive members and its decoded arrays each. 20 GB: far above the data a
# single-machine image or array set is, far below what would fill a node's disk or memory.
DEFAULT_MAX_BYTES = 20 * 10**9


def normalize_source(source: str) -> str:
    """A local path made absolute (``file://`` stripped); a URI as given."""
    source = str(source).strip()
    if source.startswith("file://"):
        source = source[len("file://"):]
    if "://" in source:
        return source
    return os.path.abspath(os.path.expanduser(source))


def is_remote(source: str) -> bool:
    return "://" in source and urlsplit(source).scheme.lower() in REMOTE_SCHEMES


@dataclass(frozen=True)
class DatasetSpec:
    kind: str
    source: str
    sha256: Optional[str] = None
    options: dict[str, Any] = field(default_factory=dict)
    storage_options: dict[str, Any] = field(default_factory=dict)
    # A bound, not an identity: left out of the entry name (a cached entry stays a hit).
    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", normalize_source(self.source))
        if self.sha256:
            object.__setattr__(self, "sha256", str(self.sha256).strip().lower())

    @property
    def shown_source(self) -> str:
        return mask_url_credentials(self.source)

    @property
    def entry_name(self) -> str:
        """``<kind>-<file name>-<12 hex>``: readable in ``aegis data ls``, unique per content."""
        identity = json.dumps({"kind": self.kind, "source": self.source, "sha256": self.sha256 or None,
                               "options": self.options}, sort_keys=True, default=str)
        digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
        base = os.path.basename(urlsplit(self.source).path.rstrip("/")) or "source"
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", base)[:40].strip("._") or "source"
        return f"{self.kind}-{slug}-{digest}"

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "source": self.source, "sha256": self.sha256,
                           "options": self.options, "storage_options": self.storage_options,
                           "max_bytes": self.max_bytes}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "DatasetSpec":
        raw = json.loads(text)
        return cls(kind=raw["kind"], source=raw["source"], sha256=raw.get("sha256"),
                   options=dict(raw.get("options") or {}), storage_options=dict(raw.get("storage_options") or {}),
                   max_bytes=int(raw.get("max_bytes") or DEFAULT_MAX_BYTES))


def spec_from_config(data: dict[str, Any], kind: str) -> DatasetSpec:
    """The spec of a resolved data config node (a plain dict), as its data module builds it."""
    return DatasetSpec(kind, data["source"], data.get("sha256"),
                       options={k: (list(data[k]) if isinstance(data.get(k), (list, tuple)) else data.get(k))
                                for k in KIND_OPTIONS[kind]},
                       storage_options=dict(data.get("storage_options") or {}),
                       max_bytes=int(data.get("max_bytes") or DEFAULT_MAX_BYTES))
