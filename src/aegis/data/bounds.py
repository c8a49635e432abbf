"""How large a source may be: ``data.max_bytes``, checked before bytes are read.

A source is data of unknown origin: a URL that serves 1 TB, a .tar.gz whose one member
inflates to gigabytes, an .npz that decodes into more memory than the node has, an image
whose header claims 30000 x 30000 pixels. Each is refused in one sentence before the
bytes are read or the memory is allocated, from what the source says of itself first
(Content-Length, fsspec's ``info``, archive member headers, array headers, image
headers), then while streaming (a count that passes the bound stops the read, so a
header that lies does not help).

``data.max_bytes`` bounds each of: the source's size (download or local file or folder),
the uncompressed size of its members, and the decoded arrays. An image file is also
bounded by ``MAX_IMAGE_BYTES`` and its pixel count by ``MAX_IMAGE_PIXELS``: no training
image is near either, and Pillow's own bomb check is a warning below twice its limit.
"""

from __future__ import annotations

from typing import IO

from aegis.data.errors import DataSourceError
from aegis.data.spec import DatasetSpec

MAX_IMAGE_BYTES = 256 * 2**20
MAX_IMAGE_PIXELS = 64 * 2**20  # 8192 x 8192


def human(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def too_large(spec: DatasetSpec, what: str, size: int, bound: int | None = None) -> DataSourceError:
    """``what`` (e.g. "holds a member x.png of") is more than the bound."""
    bound = spec.max_bytes if bound is None else bound
    if bound == spec.max_bytes:
        limit = f"data.max_bytes={spec.max_bytes} ({human(spec.max_bytes)})"
        fix = "a smaller source, or a larger data.max_bytes=<bytes> if this machine has room for it"
    else:
        limit = f"the {human(bound)} an image file may hold"
        fix = "images of a trainable size (resize them before packing)"
    return DataSourceError(f"data.source={spec.shown_source} {what} {human(size)}, more than {limit}: expected {fix}.")


def check(spec: DatasetSpec, what: str, size: int | None, bound: int | None = None) -> None:
    if size is not None and size > (spec.max_bytes if bound is None else bound):
        raise too_large(spec, what, size, bound)


def read_bounded(handle: IO[bytes], spec: DatasetSpec, what: str, bound: int) -> bytes:
    """All of ``handle``, refusing once more than ``bound`` bytes came (a header may lie)."""
    data = handle.read(bound + 1)
    if len(data) > bound:
        raise too_large(spec, what, len(data), bound)
    return data
