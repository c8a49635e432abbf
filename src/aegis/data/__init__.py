"""The dataset cache: a source fetched, verified and decoded once, then reused.

``prepare(spec, root)`` turns a ``DatasetSpec`` (a kind such as ``image_folder``, a
source URI, an optional sha256 and the decode options) into a cache entry under
``root``: ``features.npy`` and ``labels.npy`` (memory-mappable) and ``meta.json``
(source, checksum, size, time, classes, shape). Concurrent ranks, trials and pods that
share the cache take a per-entry file lock, so one downloads and the others wait and
reuse the entry; an entry that exists is used without touching the network.

Torch-free: the launch path, the ``aegis data`` commands and the prefetch init container
import this package without torch or lightning.
"""

from typing import Any

from aegis.data.cache import Cache, Entry
from aegis.data.errors import DataSourceError
from aegis.data.spec import DatasetSpec

__all__ = ["Cache", "DataSourceError", "DatasetSpec", "Entry", "prepare"]


def __getattr__(name: str) -> Any:
    if name == "prepare":  # numpy and the decoders: not on the path of every `aegis` command
        from aegis.data.caching import prepare

        return prepare
    raise AttributeError(name)
