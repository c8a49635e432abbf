"""Bring a source's bytes into a temp dir, checking them on the way.

Through fsspec: local paths and ``file://`` are read where they are (a folder is not
copied at all); ``http(s)://`` is streamed in one GET; ``s3://`` goes through s3fs, which
reads the usual AWS variables, and ``AWS_ENDPOINT_URL`` or ``data.storage_options`` for
an S3-compatible store. The sha256 is computed while the bytes arrive; it must equal
``data.sha256`` when that is given, and the byte count must equal the size the store
reported, so a cut-short transfer is never decoded.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.util
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

from aegis.data import bounds
from aegis.data.errors import DataSourceError
from aegis.data.spec import DatasetSpec, is_remote

CHUNK = 1 << 20


@dataclass(frozen=True)
class Fetched:
    path: Path  # a file (an archive, an .npz) or a local folder
    sha256: Optional[str]  # None for a folder
    size: int


def storage_options(spec: DatasetSpec) -> dict[str, Any]:
    """``data.storage_options`` for the source's filesystem; for s3:// an
    ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``) from the environment is passed as
    the endpoint unless the options name one."""
    options = dict(spec.storage_options)
    if urlsplit(spec.source).scheme == "s3":
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        client = dict(options.get("client_kwargs") or {})
        if endpoint and "endpoint_url" not in options and "endpoint_url" not in client:
            options["endpoint_url"] = endpoint
    return options


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.rstrip(".")[:200]


def unreachable(spec: DatasetSpec, exc: BaseException) -> DataSourceError:
    return DataSourceError(
        f"data.source={spec.shown_source} could not be read ({_reason(exc)}): expected a reachable source, "
        "or an entry already in the dataset cache (aegis data ls).")


def missing(spec: DatasetSpec) -> DataSourceError:
    return DataSourceError(
        f"data.source={spec.shown_source} does not exist (not found): expected the path or URI of "
        f"{'a folder, .tar, .tar.gz or .zip of class folders' if spec.kind == 'image_folder' else 'an .npz or .parquet file'}.")


def disk_full(spec: DatasetSpec, root: Path) -> DataSourceError:
    return DataSourceError(
        f"paths.dataset_cache={root} ran out of space while caching data.source={spec.shown_source}: "
        "expected a cache with room for the source and its decoded arrays (free space, aegis data rm, or "
        "another paths.dataset_cache).")


def _connection_failure(exc: BaseException) -> Optional[BaseException]:
    """The connection error behind ``exc``, if any: fsspec's HTTP filesystem reports an
    unreachable host as FileNotFoundError, which would read as a 404."""
    inner: Optional[BaseException] = exc.__cause__ or exc.__context__
    while inner is not None:
        if isinstance(inner, ConnectionError) or "Connect" in type(inner).__name__:
            return inner
        inner = inner.__cause__ or inner.__context__
    return None


def _http_status(exc: BaseException) -> Optional[int]:
    """The HTTP status behind ``exc`` (aiohttp's ``ClientResponseError.status``), if any:
    fsspec's HTTP filesystem reports every failed response as FileNotFoundError."""
    inner: Optional[BaseException] = exc
    while inner is not None:
        status = getattr(inner, "status", None)
        if isinstance(status, int) and 100 <= status <= 599:
            return status
        inner = inner.__cause__ or inner.__context__
    return None


def http_error(spec: DatasetSpec, status: int) -> DataSourceError:
    """A response that is not the file, said as what it is (a 500 is not "not found")."""
    from http import HTTPStatus

    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "unknown status"
    if status >= 500:
        what, expected = "a server error", "the server to recover (run again later), or another data.source"
    elif status in (401, 403):
        what, expected = "a refusal", ("a URL this machine may read (credentials come from the environment or the "
                                       "cloud's own config, never the config)")
    else:
        what, expected = "an error", "a URL the server serves"
    return DataSourceError(f"data.source={spec.shown_source} answered {what} (HTTP {status} {phrase}): "
                           f"expected {expected}.")


def _not_found(spec: DatasetSpec, exc: FileNotFoundError) -> DataSourceError:
    failure = _connection_failure(exc)
    if failure is not None:
        return unreachable(spec, failure)
    status = _http_status(exc)
    if status is not None and status not in (404, 410):
        return http_error(spec, status)
    return missing(spec)


def is_disk_full(exc: BaseException) -> bool:
    inner: Optional[BaseException] = exc
    while inner is not None:
        if isinstance(inner, OSError) and inner.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        inner = inner.__cause__ or inner.__context__
    return False


def fetch(spec: DatasetSpec, temp: Path) -> Fetched:
    """The source's bytes, verified: a local file or folder as it is, a remote one copied
    into ``temp``."""
    if not is_remote(spec.source):
        local = Path(spec.source)
        if local.is_dir():
            if spec.sha256:
                raise DataSourceError(
                    f"data.sha256 pins a file but data.source={spec.shown_source} is a folder: expected "
                    "data.sha256=null, or an archive (.tar, .tar.gz, .zip) as the source.")
            return Fetched(local, None, folder_size(spec, local))
        if not local.is_file():
            raise missing(spec)
        bounds.check(spec, "is", local.stat().st_size)
        digest = hashlib.sha256()
        with open(local, "rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                digest.update(chunk)
        fetched = Fetched(local, digest.hexdigest(), local.stat().st_size)
        _verify(spec, fetched, expected_size=None)
        return fetched
    return _download(spec, temp)


def folder_size(spec: DatasetSpec, root: Path) -> int:
    """The bytes of the files under ``root`` (symlinks not followed), bounded by
    ``data.max_bytes``; a folder that cannot be read is one sentence, not a traceback."""
    total = 0

    def unreadable(exc: OSError) -> None:
        raise DataSourceError(
            f"data.source={spec.shown_source} holds {exc.filename}, which cannot be read ({exc.strerror or exc}): "
            "expected a folder of class folders you can read (not a system folder such as /).")

    for folder, _dirs, files in os.walk(root, onerror=unreadable):
        for name in files:
            try:
                info = os.lstat(os.path.join(folder, name))
            except OSError as exc:
                unreadable(exc)
                continue
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
                bounds.check(spec, "holds more than", total)
    return total


def _download(spec: DatasetSpec, temp: Path) -> Fetched:
    import fsspec

    if urlsplit(spec.source).scheme in ("s3", "s3a") and importlib.util.find_spec("s3fs") is None:
        raise DataSourceError(
            f"data.source={spec.shown_source} needs s3fs, which is not installed: pip install 'aegis[s3]' "
            "(for the image: docker/build.sh --extras s3).")
    name = os.path.basename(urlsplit(spec.source).path.rstrip("/")) or "source"
    target = temp / name
    digest = hashlib.sha256()
    size = 0
    try:
        fs, path = fsspec.core.url_to_fs(spec.source, **storage_options(spec))
        expected: Optional[int] = None
        try:
            info = fs.info(path)
            expected = info.get("size")
            bounds.check(spec, "is", expected)  # Content-Length / the store's size: before any byte
            if info.get("type") == "directory":
                raise DataSourceError(
                    f"data.source={spec.shown_source} is a directory of the store: expected one archive or "
                    "array file (pack the folder as .tar, .tar.gz or .zip).")
        except FileNotFoundError as exc:
            raise _not_found(spec, exc) from None
        open_kwargs = {"block_size": 0} if urlsplit(spec.source).scheme in ("http", "https") else {}
        with fs.open(path, "rb", **open_kwargs) as remote, open(target, "wb") as local:
            for chunk in iter(lambda: remote.read(CHUNK), b""):
                digest.update(chunk)
                local.write(chunk)
                size += len(chunk)
                bounds.check(spec, "sent more than", size)  # no size said, or a wrong one
    except DataSourceError:
        raise
    except FileNotFoundError as exc:
        raise _not_found(spec, exc) from None
    except Exception as exc:
        if is_disk_full(exc):
            raise
        status = _http_status(exc)
        if status is not None and status >= 400:
            raise http_error(spec, status) from None
        raise unreachable(spec, exc) from None
    fetched = Fetched(target, digest.hexdigest(), size)
    _verify(spec, fetched, expected)
    return fetched


def _verify(spec: DatasetSpec, fetched: Fetched, expected_size: Optional[int]) -> None:
    if spec.sha256 and fetched.sha256 != spec.sha256:
        raise DataSourceError(
            f"data.sha256={spec.sha256} does not match data.source={spec.shown_source}, whose sha256 is "
            f"{fetched.sha256}: expected the sha256 of the file the source serves (sha256sum FILE), or "
            "data.sha256=null to check its size only.")
    if expected_size is not None and fetched.size != expected_size:
        raise DataSourceError(
            f"data.source={spec.shown_source} was cut short ({fetched.size} of {expected_size} bytes arrived): "
            "expected the whole file; run again to fetch it anew.")

