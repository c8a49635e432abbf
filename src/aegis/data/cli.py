"""``aegis data ls|rm`` and ``python -m aegis.data fetch``: the cache from a terminal or a pod.

``ls`` and ``rm`` read the cache directory only (no config, no network, no torch).
``fetch`` is what ``launcher.prefetch_data`` runs in an init container: the run's data
spec as JSON, cached with the same lock the training pods take, so they start with a hit.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Optional

from aegis.data.cache import ENTRY_FORM, Cache, is_entry_name
from aegis.data.errors import DataSourceError

CACHE_ENV = "AEGIS_DATASET_CACHE"


def default_cache(root: Optional[Path] = None) -> Path:
    """Where ``paths.dataset_cache`` points by default: ``$AEGIS_DATASET_CACHE``, else
    ``<outputs root>/dataset-cache``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return (root or Path(os.environ.get("AEGIS_OUTPUT_ROOT") or "outputs")) / "dataset-cache"


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def cmd_ls(args: argparse.Namespace) -> int:
    from aegis.redact import mask_url_credentials

    cache = Cache(args.cache)
    entries = cache.entries()
    if not entries:
        print(f"no datasets cached under {cache.root}", file=sys.stderr)
        return 0
    rows = [("ENTRY", "SAMPLES", "CLASSES", "SHAPE", "SIZE", "AGE", "SHA256", "SOURCE")]
    now = time.time()
    for entry in entries:
        meta = entry.meta
        rows.append((entry.name, str(meta.get("num_samples", "")), str(meta.get("num_classes", "")),
                     "x".join(str(x) for x in meta.get("input_shape") or []), _size(_disk_bytes(entry.path)),
                     _age(now - float(meta.get("fetched_at", now))), (meta.get("sha256") or "-")[:12],
                     mask_url_credentials(str(meta.get("source", "")))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    cache = Cache(args.cache)
    if args.all == bool(args.entries):
        raise DataSourceError("aegis data rm takes entry names (see aegis data ls) or --all, not both or neither.")
    names = [e.name for e in cache.entries()] if args.all else list(args.entries)
    for name in names:
        if not is_entry_name(name):
            raise DataSourceError(f"{name} is not an entry of the dataset cache {cache.root}: aegis data rm takes "
                                  f"the names aegis data ls lists ({ENTRY_FORM}), not paths.")
    unknown = [n for n in names if cache.get(n) is None]
    if unknown:
        listed = ", ".join(e.name for e in cache.entries()) or "(none: the cache is empty)"
        raise DataSourceError(f"{unknown[0]} is not an entry of the dataset cache {cache.root}: expected one of "
                              f"{listed} (aegis data ls lists them).")
    for name in names:
        cache.remove(name)
        print(f"removed {name}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from aegis.data.caching import prepare
    from aegis.data.spec import DatasetSpec

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    spec = DatasetSpec.from_json(args.spec)
    entry = prepare(spec, args.cache)
    print(f"cached {spec.shown_source} as {entry.path} ({entry.meta['num_samples']} samples, "
          f"{entry.meta['num_classes']} classes)")
    return 0


def add_commands(sub: argparse._SubParsersAction, *, with_fetch: bool) -> None:
    """The ``ls``/``rm`` (and ``fetch``) subcommands, under ``aegis data`` or ``python -m aegis.data``."""
    ls = sub.add_parser("ls", help="cached datasets: entry, size, age, checksum, source")
    ls.set_defaults(fn=cmd_ls)
    rm = sub.add_parser("rm", help="evict entries (the next run fetches them again)")
    rm.add_argument("entries", nargs="*", help="entry names, as aegis data ls shows them")
    rm.add_argument("--all", action="store_true", help="every entry")
    rm.set_defaults(fn=cmd_rm)
    if with_fetch:
        fetch = sub.add_parser("fetch", help="cache one dataset (the prefetch init container)")
        fetch.add_argument("--spec", required=True, help="the data spec as JSON (aegis.data.DatasetSpec)")
        fetch.set_defaults(fn=cmd_fetch)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m aegis.data", description="The dataset cache.")
    top.add_argument("--cache", type=Path, default=None,
                     help="the cache dir (default: $AEGIS_DATASET_CACHE, else $AEGIS_OUTPUT_ROOT/dataset-cache)")
    add_commands(top.add_subparsers(dest="command", required=True), with_fetch=True)
    return top


def main(argv: Optional[list[str]] = None) -> int:
    from aegis.errors import AegisError, error_lines

    args = parser().parse_args(argv)
    args.cache = (args.cache or default_cache()).resolve()
    try:
        return args.fn(args)
    except AegisError as exc:
        for line in error_lines(exc):
            print(line, file=sys.stderr)
        return 1
