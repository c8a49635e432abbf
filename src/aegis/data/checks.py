"""Cheap checks of ``data.source`` at compose time, before anything is created.

A source that cannot work used to be found only when the run fetched it: a run dir, a
tracking run and a cache lock existed by then. These checks need no network and read
at most a few headers, so ``validate`` runs them on every command:

- everywhere: a URI parses, with a scheme the fetcher supports and a host (a bucket),
  and a URL typed without its ``://`` (``http//host/x``, ``https:/host/x``) is named as
  such instead of being read as a relative path;
- for runs that train on this machine (a pod reads its own filesystem, not this one):
  the local path exists and is readable, and its cheap structure fits the kind: an
  ``arrays`` file is an .npz (with the two keys) or a Parquet file; an ``image_folder``
  folder or .zip holds class folders of images, a file is a .tar or .zip.

Each problem is one sentence naming ``data.source`` (or the key at fault) and what would
be valid. What only the fetch can know (a remote 404, a checksum, a member too large)
is still said at fetch time, in the same words. Torch- and numpy-free.
"""

from __future__ import annotations

import os
import re
import tarfile
import zipfile
from pathlib import PurePosixPath
from typing import Any, Optional
from urllib.parse import urlsplit

from omegaconf import DictConfig, OmegaConf

from aegis.data.bounds import human
from aegis.data.spec import TARGET_KINDS, normalize_source
from aegis.errors import Problems
from aegis.redact import mask_url_credentials

# What aegis.data.fetch can read (config/checks.py's DATA_SOURCE_SCHEMES refuses the rest).
SCHEMES = ("file", "http", "https", "s3")
# "http//host/x", "https:/host/x", "s3:bucket/x": a URL missing part of its "://".
_MANGLED_URL = re.compile(r"^(?P<scheme>https?|s3|file)(?::/?(?!/)|//)", re.I)
# Folders that are never a dataset: / itself and the kernel's pseudo-filesystems (a walk of
# them never ends well: /proc/<pid>/cwd is a PermissionError even for root).
SYSTEM_FOLDERS = ("/proc", "/sys", "/dev")
# The folder scan stops after this many directory entries: a check, not a fetch.
SCAN_LIMIT = 20000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
ZIP_MAGIC = b"PK\x03\x04"
PARQUET_MAGIC = b"PAR1"
EXPECTED = {"image_folder": "a folder, .tar, .tar.gz or .zip of class folders of images (class_name/*.png|jpg)",
            "arrays": "an .npz or .parquet file"}


def _kind(data: DictConfig) -> Optional[str]:
    return TARGET_KINDS.get(str(data.get("_target_")))


def check(cfg: DictConfig, found: Problems, local: bool) -> None:
    """Add one sentence to ``found`` for a ``data.source`` that cannot work; ``local``: the
    run trains on this machine, so a local path must exist here."""
    data = cfg.get("data")
    if not isinstance(data, DictConfig) or "source" not in data or found.covers("data.source"):
        return
    kind = _kind(data)
    if kind is None or OmegaConf.is_missing(data, "source"):
        return
    source = data.source
    if not isinstance(source, str) or not source.strip():
        return  # the schema's check says so
    problem = uri_problem(source.strip(), kind)
    if problem is None and local and "://" not in source.replace("file://", "", 1):
        problem = local_problem(source.strip(), kind, _options(data), _max_bytes(data))
    if problem is not None:
        found.add(problem, "data.source")


def _max_bytes(data: DictConfig) -> Optional[int]:
    value = data.get("max_bytes")
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def _options(data: DictConfig) -> dict[str, Any]:
    return {key: data.get(key) for key in ("features_key", "labels_key") if key in data}


def _shown(source: str) -> str:
    return mask_url_credentials(source)


def uri_problem(source: str, kind: str) -> Optional[str]:
    """What is wrong with the form of ``source`` (no I/O), or None."""
    shown = _shown(source)
    if "://" not in source:
        mangled = _MANGLED_URL.match(source)
        if mangled and not os.path.exists(source):
            scheme = mangled.group("scheme").lower()
            what = "bucket" if scheme == "s3" else "host"
            return (f"data.source={shown} looks like a {scheme} URL without its '://' (it would be read as a local "
                    f"path): expected {scheme}://<{what}>/<path>, or ./{source} for a local path of that name.")
        return None
    parts = urlsplit(source)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        return None  # the schema's check (config/checks.py data_source) names the schemes
    if scheme == "file":
        return None
    what = "bucket" if scheme == "s3" else "host"
    if not parts.hostname:
        return (f"data.source={shown} has no {what}: expected {scheme}://<{what}>/<path to "
                f"{EXPECTED[kind]}>.")
    if not parts.path.strip("/"):
        return (f"data.source={shown} names no file on {parts.hostname}: expected {scheme}://{parts.hostname}/<path "
                f"to {EXPECTED[kind]}>.")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return f"data.source={shown} has a port that is not a number: expected {scheme}://<{what}>[:<port>]/<path>."
    return None


def local_problem(source: str, kind: str, options: dict[str, Any], max_bytes: Optional[int] = None) -> Optional[str]:
    """What is wrong with the local file or folder ``source`` as ``kind``, read cheaply, or None."""
    path = normalize_source(source)
    shown = _shown(source)
    if not os.path.exists(path):
        parent = os.path.dirname(path)
        where = "" if os.path.isdir(parent) else f" (nor does {parent})"
        return f"data.source={shown} does not exist{where}: expected the path or URI of {EXPECTED[kind]}."
    if not os.access(path, os.R_OK):
        return f"data.source={shown} cannot be read (permission denied): expected {EXPECTED[kind]} you can read."
    if os.path.isdir(path):
        system = "/" if path == "/" else next((s for s in SYSTEM_FOLDERS if path == s or path.startswith(s + "/")),
                                              None)
        if system is not None:
            return (f"data.source={shown} is {'the root of the filesystem' if system == '/' else 'under ' + system}, "
                    f"which is not a dataset (reading it would walk the system's files): expected "
                    f"{EXPECTED[kind]}.")
        if kind == "arrays":
            return f"data.source={shown} is a folder: expected {EXPECTED[kind]}."
        return _folder_problem(path, shown)
    if not os.path.isfile(path):
        return f"data.source={shown} is not a regular file or folder: expected {EXPECTED[kind]}."
    size = os.path.getsize(path)
    if max_bytes is not None and size > max_bytes:
        return (f"data.source={shown} is {human(size)}, more than data.max_bytes={max_bytes} ({human(max_bytes)}): "
                "expected a smaller source, or a larger data.max_bytes=<bytes> if this machine has room for it.")
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
        if kind == "arrays":
            return _arrays_problem(path, shown, head, options)
        return _archive_problem(path, shown, head)
    except OSError as exc:
        return f"data.source={shown} cannot be read ({exc.strerror or exc}): expected {EXPECTED[kind]} you can read."


def _arrays_problem(path: str, shown: str, head: bytes, options: dict[str, Any]) -> Optional[str]:
    if head == PARQUET_MAGIC:
        return None
    if head != ZIP_MAGIC:
        return f"data.source={shown} is neither an .npz nor a Parquet file: expected {EXPECTED['arrays']}."
    try:
        with zipfile.ZipFile(path) as archive:  # the central directory only
            names = [n[:-4] for n in archive.namelist() if n.endswith(".npy")]
    except (zipfile.BadZipFile, OSError) as exc:
        return f"data.source={shown} is not a readable .npz ({exc}): expected {EXPECTED['arrays']}."
    for key in ("features_key", "labels_key"):
        value = options.get(key) or key.split("_")[0]
        if value not in names:
            return (f"data.{key}={value} is not in data.source={shown}: expected one of "
                    f"{', '.join(sorted(names)) or '(nothing: the file holds no arrays)'}.")
    return None


def _archive_problem(path: str, shown: str, head: bytes) -> Optional[str]:
    if head == ZIP_MAGIC:
        try:
            with zipfile.ZipFile(path) as archive:
                return _layout_problem((n for n in archive.namelist() if not n.endswith("/")), shown)
        except (zipfile.BadZipFile, OSError) as exc:
            return f"data.source={shown} is not a readable .zip ({exc}): expected {EXPECTED['image_folder']}."
    try:
        is_tar = tarfile.is_tarfile(path)  # reads the first header (of a .tar.gz: its first block)
    except (OSError, EOFError):
        is_tar = False
    if not is_tar:
        return (f"data.source={shown} is neither a folder nor a .tar, .tar.gz or .zip archive: expected "
                f"{EXPECTED['image_folder']}.")
    return None  # a tar's members are listed at fetch time: listing a .tar.gz decompresses it


def _layout_problem(names: Any, shown: str) -> Optional[str]:
    """A sentence when no image sits in a class folder (relative names), else None."""
    loose = None
    classes: set[str] = set()
    for name in names:
        parts = PurePosixPath(name).parts
        if not name.lower().endswith(IMAGE_SUFFIXES) or any(p.startswith(".") for p in parts):
            continue
        if len(parts) < 2:
            loose = loose or name
            continue
        classes.add(parts[-2])
        if len(classes) >= 2:
            return None
    if classes:
        why = f"holds one class folder only ({next(iter(classes))})"
    else:
        why = f"holds images only at its top level ({loose}, ...)" if loose else "holds no images"
    return (f"data.source={shown} {why}: expected class folders of images, class_name/*.png|jpg "
            "(e.g. cat/1.png, dog/2.jpg), in a folder, .tar, .tar.gz or .zip.")


def _folder_problem(root: str, shown: str) -> Optional[str]:
    """Scan at most ``SCAN_LIMIT`` entries for images in two class folders."""

    def names() -> Any:
        seen = 0
        stack = [root]
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                raise _Unreadable(folder, exc) from None
            for entry in entries:
                seen += 1
                if seen > SCAN_LIMIT:
                    raise _Enough()
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file():
                    yield os.path.relpath(entry.path, root).replace(os.sep, "/")

    try:
        return _layout_problem(names(), shown)
    except _Enough:
        return None  # a large folder: its layout is checked when it is cached
    except _Unreadable as exc:
        return (f"data.source={shown} holds {exc.path}, which cannot be read ({exc.error.strerror or exc.error}): "
                f"expected a folder of class folders you can read (not a system folder such as /).")


class _Enough(Exception):
    pass


class _Unreadable(Exception):
    def __init__(self, path: str, error: OSError) -> None:
        super().__init__(path)
        self.path, self.error = path, error
