"""The cache directory: entries, their locks, and what a killed fetch left behind.

Layout under the root (``paths.dataset_cache``; ``$AEGIS_DATASET_CACHE`` in pods)::

    <entry>/features.npy  labels.npy  meta.json     a whole entry (placed by one rename)
    .locks/<entry>.lock                              the per-entry fcntl lock
    .tmp-<entry>-<pid>-<random>/                     a fetch in progress

An entry directory appears only by ``rename`` of a finished temp directory, so a reader
that sees ``<entry>/meta.json`` sees a whole entry without locking. A temp directory is
only ever written by the process holding the entry's lock, so whoever takes the lock
next may delete every temp directory of that entry: their owners died (kill -9, a node
lost) and the kernel released their locks.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

log = logging.getLogger("aegis.data")

META = "meta.json"
FEATURES = "features.npy"
LABELS = "labels.npy"
LOCKS = ".locks"
TEMP_PREFIX = ".tmp-"
# What ``DatasetSpec.entry_name`` makes: ``<kind>-<file name>-<12 hex>``, no "/" and never
# "." or "..": an entry is a directory directly in the cache root, nothing else.
ENTRY_NAME = re.compile(r"[a-z][a-z0-9_]*-[A-Za-z0-9._-]{1,40}-[0-9a-f]{12}")
ENTRY_FORM = "<kind>-<source file name>-<12 hex digits>"
# ``temp_dir`` makes ``.tmp-<entry>-<pid>-<8 hex>``; ``remove`` renames an entry to
# ``.tmp-<entry>-rm-<8 hex>`` before deleting it.
TEMP_SUFFIX = r"-(?:[0-9]+|rm)-[0-9a-f]{8}"
TEMP_NAME = re.compile(re.escape(TEMP_PREFIX) + ENTRY_NAME.pattern + TEMP_SUFFIX)


def is_entry_name(name: str) -> bool:
    return isinstance(name, str) and ENTRY_NAME.fullmatch(name) is not None


@dataclass(frozen=True)
class Entry:
    path: Path
    meta: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name


class Cache:
    def __init__(self, root: os.PathLike | str) -> None:
        self.root = Path(root).expanduser().resolve()

    # ------------------------------------------------------------------ reading

    def get(self, name: str) -> Optional[Entry]:
        """The whole entry ``name``, or None: never a partial one (see the module docstring),
        nor anything that is not a directory directly in the cache named as entries are."""
        if not is_entry_name(name):
            return None
        path = self.root / name
        if path.is_symlink():
            return None
        try:
            meta = json.loads((path / META).read_text())
        except (OSError, ValueError):
            return None
        return Entry(path, meta)

    def entries(self) -> list[Entry]:
        if not self.root.is_dir():
            return []
        found = (self.get(p.name) for p in sorted(self.root.iterdir())
                 if p.is_dir() and not p.name.startswith("."))
        return [e for e in found if e is not None]

    def temp_dirs(self, name: Optional[str] = None) -> list[Path]:
        """Temp dirs of entry ``name`` (of every entry without one). Matched whole, not by
        prefix: an entry's name may begin with another's plus "-" (``npz-a-<hex>`` and
        ``npz-a-<hex>-b-<hex>``), and sweeping the first must not delete the second's fetch."""
        if not self.root.is_dir():
            return []
        shape = TEMP_NAME if name is None else re.compile(re.escape(TEMP_PREFIX + name) + TEMP_SUFFIX)
        return sorted(p for p in self.root.iterdir() if shape.fullmatch(p.name))

    # ------------------------------------------------------------------ writing

    @contextlib.contextmanager
    def locked(self, name: str, waiting: str = "") -> Iterator[None]:
        """Hold the entry's lock (blocking). ``flock`` works across processes on one host and,
        on NFS-backed claims, across nodes (the Linux NFS client maps it to a POSIX lock)."""
        if not is_entry_name(name):
            raise ValueError(f"{name!r} is not a dataset cache entry name ({ENTRY_FORM})")
        locks = self.root / LOCKS
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{name}.lock", "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if waiting:
                    log.info("%s", waiting)
                started = time.monotonic()
                fcntl.flock(handle, fcntl.LOCK_EX)
                log.info("Waited %.1f s for %s.", time.monotonic() - started, name)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def sweep(self, name: str) -> list[Path]:
        """Delete the temp dirs of ``name`` (call with its lock held): each was left by a
        fetch that was killed, and is never read."""
        swept = []
        for path in self.temp_dirs(name):
            shutil.rmtree(path, ignore_errors=True)
            swept.append(path)
            log.info("Removed %s, left by a fetch that was killed before it finished.", path.name)
        return swept

    def temp_dir(self, name: str) -> Path:
        path = self.root / f"{TEMP_PREFIX}{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        return path

    def place(self, temp: Path, name: str) -> Entry:
        """Publish a finished temp dir as entry ``name`` in one rename."""
        target = self.root / name
        try:
            os.rename(temp, target)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            shutil.rmtree(temp, ignore_errors=True)  # someone placed it first (rm + refetch races)
        entry = self.get(name)
        assert entry is not None, f"{target} was placed without {META}"
        return entry

    def remove(self, name: str) -> bool:
        """Evict one entry under its lock; a reader that already mapped its arrays keeps them
        (the files are unlinked, not truncated)."""
        if self.get(name) is None:  # only a whole entry directly in the cache, never a path out of it
            return False
        path = self.root / name
        with self.locked(name):
            doomed = self.root / f"{TEMP_PREFIX}{name}-rm-{uuid.uuid4().hex[:8]}"
            os.rename(path, doomed)  # gone from lookups at once, then deleted
            shutil.rmtree(doomed, ignore_errors=True)
        # The lock file stays: unlinking it while another process waits on it would let a
        # third lock a new file and fetch alongside the waiter.
        return True
