"""The dataset cache's own rules, in-process (``aegis.data.cache``, issue 23's mutation score):
what counts as an entry, which temp folders belong to which entry, that the per-entry lock
excludes and waits, and that removing an entry leaves no trace but its lock file.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from pathlib import Path

import pytest

from aegis.data.cache import Cache, is_entry_name

ENTRY = "npz-digits.npz-0123456789ab"
OTHER = "folder-images-fedcba987654"


def _entry(root: Path, name: str, meta: dict | None = None) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "meta.json").write_text(json.dumps(meta if meta is not None else {"name": name}))
    return path


@pytest.mark.parametrize("name, valid", [
    (ENTRY, True), (OTHER, True), ("npz-a-0123456789ab-b-fedcba987654", True),
    ("npz-digits.npz-0123456789a", False),  # 11 hex digits
    ("Npz-digits-0123456789ab", False), ("../npz-a-0123456789ab", False), (".locks", False), ("..", False),
    ("npz-a/b-0123456789ab", False), (f"{ENTRY}\n", False), (None, False), (42, False),
])
def test_entry_names_are_kind_source_and_twelve_hex_digits(name, valid):
    assert is_entry_name(name) is valid


def test_only_a_whole_entry_named_as_entries_are_is_found(tmp_path):
    cache = Cache(tmp_path)
    whole = _entry(tmp_path, ENTRY, {"rows": 3})
    found = cache.get(ENTRY)
    assert found is not None and (found.path, found.meta, found.name) == (whole, {"rows": 3}, ENTRY)
    (tmp_path / OTHER).mkdir()  # a fetch's rename not done: no meta.json
    assert cache.get(OTHER) is None
    bad = tmp_path / "npz-bad-0123456789ab"
    bad.mkdir()
    (bad / "meta.json").write_text("{half")
    assert cache.get(bad.name) is None
    (tmp_path / "npz-link-0123456789ab").symlink_to(whole)  # might point anywhere
    assert cache.get("npz-link-0123456789ab") is None
    assert cache.get("..") is None and cache.get(f"../{tmp_path.name}/{ENTRY}") is None


def test_the_cache_lists_its_whole_entries_in_name_order_and_nothing_else(tmp_path):
    cache = Cache(tmp_path / "not-yet")
    assert cache.entries() == [] and cache.temp_dirs() == [] and cache.temp_dirs(ENTRY) == []
    cache = Cache(tmp_path)
    _entry(tmp_path, OTHER)
    _entry(tmp_path, ENTRY)
    cache.temp_dir(ENTRY)
    _entry(tmp_path, ".hidden-0123456789ab")
    (tmp_path / "npz-empty-0123456789ab").mkdir()
    (tmp_path / "npz-file-0123456789ab").write_text("a file")
    (tmp_path / ".locks").mkdir()
    assert [e.name for e in cache.entries()] == [OTHER, ENTRY]


def test_a_cache_root_with_a_tilde_is_the_users_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Cache("~/cache").root == tmp_path / "cache"
    assert Cache(tmp_path / "a" / ".." / "b").root == tmp_path / "b"


def test_temp_dirs_are_named_for_their_entry_and_process_and_listed_per_entry(tmp_path):
    cache = Cache(tmp_path / "new" / "cache")  # made on first use
    mine = cache.temp_dir(ENTRY)
    assert mine.is_dir() and mine.parent == cache.root
    assert mine.name.startswith(f".tmp-{ENTRY}-{os.getpid()}-") and len(mine.name) == len(f".tmp-{ENTRY}-{os.getpid()}-") + 8
    second = cache.temp_dir(ENTRY)
    assert second != mine
    removing = cache.root / f".tmp-{OTHER}-rm-0badc0de"
    removing.mkdir()
    (cache.root / ".tmp-not-an-entry-1-0badc0de").mkdir()
    (cache.root / ".locks").mkdir()
    assert cache.temp_dirs(ENTRY) == sorted([mine, second])
    assert cache.temp_dirs() == sorted([mine, second, removing])


def test_sweeping_deletes_an_entrys_dead_fetches_and_says_so(tmp_path, caplog):
    cache = Cache(tmp_path)
    dead = [cache.temp_dir(ENTRY), cache.temp_dir(ENTRY)]
    (dead[0] / "features.npy").write_bytes(b"half")
    other = cache.temp_dir(OTHER)
    with caplog.at_level(logging.INFO, logger="aegis.data"):
        assert cache.sweep(ENTRY) == sorted(dead)
    assert not any(p.exists() for p in dead) and other.is_dir()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [f"Removed {p.name}, left by a fetch that was killed before it finished." for p in sorted(dead)]
    assert cache.sweep(ENTRY) == []


def test_placing_publishes_the_finished_folder_as_the_entry(tmp_path):
    cache = Cache(tmp_path)
    temp = cache.temp_dir(ENTRY)
    (temp / "meta.json").write_text(json.dumps({"rows": 5}))
    entry = cache.place(temp, ENTRY)
    assert (entry.path, entry.meta) == (tmp_path / ENTRY, {"rows": 5}) and not temp.exists()
    with pytest.raises(FileNotFoundError):  # a failure other than "someone placed it first" is raised
        cache.place(tmp_path / ".tmp-gone", OTHER)


def test_the_entry_lock_excludes_other_holders_until_released(tmp_path):
    cache = Cache(tmp_path)
    lock_file = tmp_path / ".locks" / f"{ENTRY}.lock"
    with cache.locked(ENTRY):
        with open(lock_file) as other:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with cache.locked(OTHER):  # another entry's lock is another lock
            pass
    with open(lock_file) as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(other, fcntl.LOCK_UN)
    with pytest.raises(ValueError, match=r"'\.\./x' is not a dataset cache entry name \(<kind>-<source file name>-<12"):
        with cache.locked("../x"):
            pass
    assert sorted(p.name for p in (tmp_path / ".locks").iterdir()) == [f"{OTHER}.lock", f"{ENTRY}.lock"]


def test_a_second_holder_waits_for_the_lock_and_says_what_it_waits_for(tmp_path, caplog):
    cache = Cache(tmp_path)
    held, release = threading.Event(), threading.Event()

    def holder():
        with cache.locked(ENTRY):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(10)
    threading.Timer(0.2, release.set).start()
    with caplog.at_level(logging.INFO, logger="aegis.data"):
        started = time.monotonic()
        with cache.locked(ENTRY, waiting="Another process is fetching digits; waiting for it."):
            waited = time.monotonic() - started
            assert release.is_set()
    thread.join(10)
    assert waited >= 0.15
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "Another process is fetching digits; waiting for it."
    assert messages[1].startswith("Waited ") and messages[1].endswith(f" s for {ENTRY}.")


def test_removing_an_entry_leaves_only_its_lock_file_and_a_reader_keeps_its_data(tmp_path):
    cache = Cache(tmp_path)
    path = _entry(tmp_path, ENTRY)
    (path / "labels.npy").write_bytes(b"0123")
    reader = open(path / "labels.npy", "rb")
    try:
        assert cache.remove(ENTRY) is True
        assert reader.read() == b"0123"
    finally:
        reader.close()
    assert cache.get(ENTRY) is None and cache.entries() == [] and cache.temp_dirs() == []
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [".locks", f".locks/{ENTRY}.lock"]
    assert cache.remove(ENTRY) is False
    with cache.locked(ENTRY):  # the lock was released
        pass
