"""Source → cache entry, once: look up, else lock, fetch, verify, decode, place.

A hit is read without the lock and without the network. A miss takes the entry's lock;
whoever gets it second finds the entry placed and reuses it. A failure of any kind
removes the attempt's temp dir, so the cache holds nothing of a bad source; a kill -9
leaves one, which the next holder of the lock sweeps.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

from aegis.data import arrays, images
from aegis.data.cache import FEATURES, LABELS, META, Cache, Entry
from aegis.data.errors import DataSourceError
from aegis.data.fetch import disk_full, fetch, is_disk_full
from aegis.data.spec import KINDS, DatasetSpec

log = logging.getLogger("aegis.data")

FORMAT = 1
DECODERS = {"image_folder": images.decode, "arrays": arrays.decode}


def prepare(spec: DatasetSpec, root: os.PathLike | str) -> Entry:
    """The cache entry of ``spec`` under ``root``, fetched and decoded if it is not there."""
    if spec.kind not in KINDS:
        raise DataSourceError(f"data kind {spec.kind!r} has no decoder: expected one of {', '.join(KINDS)}.")
    cache = Cache(root)
    name = spec.entry_name
    entry = cache.get(name) or pinned_hit(spec, cache)
    if entry is not None:
        return entry
    try:
        cache.root.mkdir(parents=True, exist_ok=True)
        with cache.locked(name, waiting=f"Waiting for another process to cache {spec.shown_source} ({name})."):
            entry = cache.get(name)
            if entry is not None:
                return entry
            cache.sweep(name)
            return _build(spec, cache, name)
    except DataSourceError:
        raise
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full(spec, cache.root) from None
        raise


def pinned_hit(spec: DatasetSpec, cache: Cache) -> Entry | None:
    """The entry an unpinned fetch of the same source made, when its sha256 is the one now
    pinned: the log of that fetch says "pin it with data.sha256=...", and the bytes it
    decoded are the pinned ones, so pinning must not fetch them again."""
    if not spec.sha256:
        return None
    entry = cache.get(dataclasses.replace(spec, sha256=None).entry_name)
    if entry is None or entry.meta.get("sha256") != spec.sha256:
        return None
    log.info("Using %s, cached from %s with sha256 %s (the pinned one).", entry.name, spec.shown_source, spec.sha256)
    return entry


def _build(spec: DatasetSpec, cache: Cache, name: str) -> Entry:
    temp = cache.temp_dir(name)
    try:
        started = time.time()
        log.info("Caching %s in %s ...", spec.shown_source, cache.root / name)
        fetched = fetch(spec, temp)
        features, labels, facts = DECODERS[spec.kind](fetched.path, spec)
        if fetched.path.parent == temp:
            fetched.path.unlink()  # the download: only the decoded arrays are kept
        for file, array in ((FEATURES, features), (LABELS, labels)):
            with open(temp / file, "wb") as handle:
                np.save(handle, array)
                handle.flush()
                os.fsync(handle.fileno())
        meta = {
            "format": FORMAT,
            "kind": spec.kind,
            "source": spec.shown_source,
            "sha256": fetched.sha256,
            "sha256_pinned": bool(spec.sha256),
            "size": fetched.size,
            "fetched_at": time.time(),
            "seconds": round(time.time() - started, 3),
            "num_samples": int(len(labels)),
            "num_classes": len(facts["classes"]),
            "dtype": str(features.dtype),
            "options": spec.options,
            **facts,
        }
        (temp / META).write_text(json.dumps(meta, indent=2) + "\n")
        entry = cache.place(temp, name)
        pin = "" if spec.sha256 or fetched.sha256 is None else f"; pin it with data.sha256={fetched.sha256}"
        log.info("Cached %s: %d samples, %d classes, shape %s in %.1f s%s.", spec.shown_source, meta["num_samples"],
                 meta["num_classes"], meta["input_shape"], meta["seconds"], pin)
        return entry
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def load(entry: Entry, mmap: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The entry's (features, labels), memory-mapped."""
    mode = "r" if mmap else None
    return np.load(entry.path / FEATURES, mmap_mode=mode), np.load(entry.path / LABELS, mmap_mode=mode)


def cache_root(path: os.PathLike | str) -> Path:
    return Path(path).expanduser().resolve()
