"""The embedded MLflow store: one SQLite file that many runs open at the same time.

MLflow creates and migrates a SQLite store the first time any process opens it, without
a lock: runs started together on a fresh outputs root race in its alembic migrations
("table _alembic_tmp_* already exists") and can leave the file half-migrated for good.
``prepare_store`` does that work once, under a file lock beside the database, before
MLflow opens it, and switches the file to WAL (readers never wait for the writer; the
mode is stored in the file, so every later connection gets it). A store that is already
ready costs one SQLite connection and a few reads, without the lock.

``store_lock`` also serializes the few writes that race between runs of one store
(registering versions of one model), and ``retry_transient`` retries what SQLite reports
as "database is locked" where MLflow gives up.

Only MLflow's own schema functions create or upgrade the schema (``mlflow.store.db.utils``,
the same ones its stores call on open); they are private to MLflow, so they are used here
and nowhere else.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import random
import re
import sqlite3
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Optional, TypeVar

log = logging.getLogger("aegis.training")

T = TypeVar("T")

LOCK_SUFFIX = ".lock"
TMP_TABLE_PREFIX = "_alembic_tmp_"
VERSION_TABLE = "alembic_version"
BUSY_TIMEOUT_S = 60.0  # SQLite waits this long for another writer before "database is locked"
LOCK_TIMEOUT_S = 600.0  # a first migration takes seconds; minutes means a stuck holder
WAL_SWITCH_TIMEOUT_S = 5.0  # switching needs the file to itself; a busy store just stays as it is

# sqlite:///relative.db, sqlite:////absolute.db, sqlite+pysqlite:///..., with an optional ?query
_SQLITE_URI = re.compile(r"^sqlite(?:\+\w+)?:///(?P<path>[^?]+)(?:\?.*)?$")


class StoreError(RuntimeError):
    """The embedded store cannot be used as it is; the message names the file and what to do."""


def sqlite_path(uri: str) -> Optional[Path]:
    """The database file behind a ``sqlite:`` tracking URI; None for a server or in-memory SQLite."""
    match = _SQLITE_URI.match(uri)
    if match is None or match.group("path") == ":memory:":
        return None
    return Path(match.group("path"))


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + LOCK_SUFFIX)


@contextmanager
def store_lock(db_path: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """An exclusive ``flock`` on ``<db>.lock``, shared by every process (and thread) using the store.

    The lock belongs to the open file, so it is released when the holder exits, even by kill -9.
    """
    path = lock_path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StoreError(f"Waited {timeout_s:.0f} s for the lock {path} of the MLflow store; "
                                     "another process holds it (a stuck run?).") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


def registry_lock(uri: str) -> ContextManager[None]:
    """Serializes model registrations on an embedded store (MLflow numbers versions with a
    read-then-insert that concurrent runs can repeat past its own retries); a server is left alone."""
    path = sqlite_path(uri)
    return store_lock(path) if path is not None else nullcontext()


@dataclass(frozen=True)
class StoreState:
    tables: frozenset[str]
    revisions: tuple[str, ...]
    journal_mode: str

    @property
    def leftover_tmp_tables(self) -> list[str]:
        return sorted(t for t in self.tables if t.startswith(TMP_TABLE_PREFIX))

    @property
    def empty(self) -> bool:
        """No MLflow table yet (the version table alone is left by a first attempt that stopped early)."""
        return not (self.tables - {VERSION_TABLE})


def inspect_store(db_path: Path) -> StoreState:
    """Tables, schema revision and journal mode, read with the standard library (no SQLAlchemy)."""
    try:
        con = sqlite3.connect(str(db_path), timeout=BUSY_TIMEOUT_S)
        try:
            tables = frozenset(r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
            revisions: tuple[str, ...] = ()
            if VERSION_TABLE in tables:
                revisions = tuple(r[0] for r in con.execute(f"SELECT version_num FROM {VERSION_TABLE}"))
            mode = str(con.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise StoreError(f"The MLflow store {db_path} cannot be read as SQLite ({exc}); "
                         "move it aside to start a fresh store, or point logger.tracking_uri elsewhere.") from exc
    return StoreState(tables, revisions, mode)


def _private(name: str) -> Any:
    """``mlflow.store.db.utils.<name>``: a private MLflow helper (docs/internals.md lists them;
    every caller falls back to MLflow's public client when one is gone)."""
    import mlflow.store.db.utils as utils

    return getattr(utils, name)


@functools.lru_cache(maxsize=None)
def head_revision() -> str:
    """The schema revision this MLflow writes (its newest migration; reading them takes ~20 ms)."""
    return _private("_get_latest_schema_revision")()


def known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    config = _private("_get_alembic_config")("")
    return {rev.revision for rev in ScriptDirectory.from_config(config).walk_revisions()}


def is_ready(state: StoreState, head: str) -> bool:
    return state.revisions == (head,) and state.journal_mode == "wal" and not state.leftover_tmp_tables


def prepare_store(uri: str) -> None:
    """Make an embedded store ready before MLflow opens it: created, at this MLflow's schema, in WAL.

    Servers (any non-SQLite URI) migrate themselves; nothing to do. Raises ``StoreError``
    for a store that cannot be used safely (half-migrated, newer MLflow, not SQLite).
    """
    db_path = sqlite_path(uri)
    if db_path is None:
        return
    try:
        head = head_revision()
    except Exception as exc:  # MLflow moved its private helper (docs/internals.md)
        log.warning("Cannot read this MLflow's schema revision (%s); letting MLflow prepare %s, one process "
                    "at a time.", _first_line(exc), db_path)
        with store_lock(db_path):
            db_path.parent.mkdir(parents=True, exist_ok=True)
            _open_with_mlflow(uri)
            _switch_to_wal(db_path)
        return
    if db_path.is_file() and db_path.stat().st_size > 0 and is_ready(inspect_store(db_path), head):
        return
    with store_lock(db_path):
        _prepare_locked(db_path, uri, head)


def _prepare_locked(db_path: Path, uri: str, head: str) -> None:
    """Under the store lock: nobody else is migrating, so anything odd now is really there."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    state = inspect_store(db_path)
    if state.leftover_tmp_tables:
        raise StoreError(
            f"The MLflow store {db_path} was left half-migrated by an interrupted or concurrent schema "
            f"migration (revision {', '.join(state.revisions) or 'none'}, leftover tables "
            f"{', '.join(state.leftover_tmp_tables)}); move it aside to start a fresh store (its runs "
            "cannot be read safely) or restore a backup.")
    if state.empty:
        _switch_to_wal(db_path)
        _create(db_path, uri, stale_version=bool(state.revisions))
        log.info("Created the MLflow store %s", db_path)
        return
    if state.revisions != (head,):
        _upgrade(db_path, uri, state, head)
    _switch_to_wal(db_path)


def _create(db_path: Path, uri: str, stale_version: bool) -> None:
    if stale_version:  # a version stamp without tables: migrating from it would fail; there is no data
        con = sqlite3.connect(str(db_path), timeout=BUSY_TIMEOUT_S)
        with con:
            con.execute(f"DROP TABLE {VERSION_TABLE}")
        con.close()
    try:
        from mlflow.store.db.utils import create_sqlalchemy_engine_with_retry

        initialize_tables = _private("_initialize_tables")
        engine = create_sqlalchemy_engine_with_retry(uri)
    except Exception as exc:  # MLflow moved its private helpers (docs/internals.md)
        log.warning("MLflow's table set-up is not where Aegis expects it (%s); letting MLflow create %s.",
                    _first_line(exc), db_path)
        _open_with_mlflow(uri)
        return
    try:
        initialize_tables(engine)
    finally:
        engine.dispose()


def _open_with_mlflow(uri: str) -> None:
    """The public way to have MLflow create or migrate a store: open it through its client
    (the caller holds the store lock, so one process at a time does it)."""
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as exc:
        raise StoreError(f"MLflow could not open the store {uri} ({_first_line(exc)}).") from exc


def _upgrade(db_path: Path, uri: str, state: StoreState, head: str) -> None:
    """A store from an older MLflow: copy it aside, then migrate it as MLflow's own open would."""
    current = ", ".join(state.revisions) or "none"
    try:
        known = known_revisions()
    except Exception:  # MLflow moved its private helper: let its own migration judge the revision
        known = set(state.revisions)
    if len(state.revisions) != 1 or state.revisions[0] not in known:
        raise StoreError(
            f"The MLflow store {db_path} has schema revision {current}, which this MLflow does not know "
            f"(a newer MLflow wrote it, or it is damaged); open it with that MLflow, or move it aside "
            "to start a fresh store.")
    backup = db_path.with_name(f"{db_path.name}.bak-{state.revisions[0]}")
    _backup(db_path, backup)
    from mlflow.store.db.utils import create_sqlalchemy_engine_with_retry

    engine = create_sqlalchemy_engine_with_retry(uri)
    try:
        _private("_initialize_tables")(engine)  # creates what is missing, then migrates to head
    except Exception as exc:
        raise StoreError(f"Upgrading the MLflow store {db_path} from schema {current} failed "
                         f"({_first_line(exc)}); the store as it was is kept at {backup}.") from exc
    finally:
        engine.dispose()
    log.warning("Upgraded the MLflow store %s from schema %s to %s (the previous file is kept at %s)",
                db_path, current, head, backup)


def _backup(source: Path, target: Path) -> None:
    """A consistent copy through SQLite's backup API (a plain copy could catch a write half-done)."""
    src = sqlite3.connect(str(source), timeout=BUSY_TIMEOUT_S)
    dst = sqlite3.connect(str(target))
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _switch_to_wal(db_path: Path) -> None:
    """WAL lets every run read while one writes; it needs the file to itself for a moment, so a
    store held open elsewhere keeps its mode and the next run tries again."""
    try:
        con = sqlite3.connect(str(db_path), timeout=WAL_SWITCH_TIMEOUT_S)
        try:
            mode = str(con.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
        finally:
            con.close()
    except sqlite3.OperationalError as exc:
        log.warning("The MLflow store %s stays in its journal mode for now (%s)", db_path, exc)
        return
    if mode != "wal":  # e.g. a file system without shared memory
        log.warning("The MLflow store %s cannot use WAL here (journal mode %s)", db_path, mode)


def is_transient(exc: BaseException) -> bool:
    """SQLite busy errors (as MLflow wraps them), and MLflow giving up on numbering a model version."""
    chain: list[BaseException] = []
    seen: Optional[BaseException] = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for link in chain:
        text = str(link)
        if "database is locked" in text or "database table is locked" in text:
            return True
        if getattr(link, "error_code", None) == "TEMPORARILY_UNAVAILABLE" or "Model Version creation error" in text:
            return True
    return False


def retry_transient(action: Callable[[], T], what: str, attempts: int = 8) -> T:
    """``action()``, again after a jittered back-off while it fails transiently (see ``is_transient``)."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return action()
        except Exception as exc:
            if attempt >= attempts or not is_transient(exc):
                raise
            delay = min(5.0, 0.2 * 2 ** attempt) * random.uniform(0.5, 1.5)
            log.info("%s: store busy (%s); retrying in %.1f s", what, _first_line(exc), delay)
            time.sleep(delay)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
