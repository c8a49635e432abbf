"""The readers that decide what a command acts on: which run a name means, which lines a
log has, whether a pid still runs, what a ``job.json`` says, which temp dirs are dead.

Each test here names one rule whose break (issue 23's mutation probes) failed no test before.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aegis.data.cache import Cache
from aegis.core.lifecycle import JobRef, process_alive
from aegis.launch.process import tail_file
from aegis.runs import RunNotFound, find_run, iter_runs


def _run(root: Path, folder: str, *, recorded: str | None = None, task: str = "train") -> Path:
    path = root / task / "runs" / folder
    path.mkdir(parents=True)
    (path / "summary.json").write_text(json.dumps({"run_id": recorded or folder, "status": "completed"}))
    return path


def test_an_exact_run_id_wins_over_longer_ids_it_prefixes(tmp_path):
    exp1 = _run(tmp_path, "exp1")
    _run(tmp_path, "exp10")
    _run(tmp_path, "exp11")
    assert find_run("exp1", tmp_path).path == exp1
    with pytest.raises(RunNotFound, match="matches 3 runs"):
        find_run("exp", tmp_path)


def test_a_run_is_named_by_the_id_it_recorded_not_its_folder(tmp_path):
    moved = _run(tmp_path, "2026-12-04_10-00-00_abc123", recorded="baseline")
    assert [r.run_id for r in iter_runs(tmp_path)] == ["baseline"]
    assert find_run("baseline", tmp_path).path == moved
    assert find_run("base", tmp_path).run_id == "baseline"
    with pytest.raises(RunNotFound, match="no run '2026-12-04_10'"):
        find_run("2026-12-04_10", tmp_path)


def test_job_json_names_the_run_before_summary_json_and_a_blank_id_is_no_id(tmp_path):
    path = _run(tmp_path, "folder", recorded="from-summary")
    (path / "job.json").write_text(json.dumps({"run_id": "from-job", "launcher": "local", "run_dir": str(path)}))
    assert find_run("from-job", tmp_path).path == path
    (path / "job.json").write_text(json.dumps({"run_id": ""}))
    (path / "summary.json").write_text(json.dumps(["not", "a", "record"]))
    assert find_run("folder", tmp_path).run_id == "folder"


def test_a_run_dir_given_as_a_path_is_taken_as_it_is(tmp_path):
    path = _run(tmp_path, "a", recorded="alpha")
    found = find_run(str(path), tmp_path / "elsewhere")
    assert (found.path, found.run_id) == (path.resolve(), "alpha")


def test_the_last_line_of_a_log_is_read_even_without_a_newline(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("first\nsecond\nlast words")
    assert list(tail_file(log, lambda: False, follow=False, poll_s=0)) == ["first", "second", "last words"]


def test_following_a_log_joins_a_line_written_in_two_pieces(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("Epoch 1: lo")
    polls = iter([True, False])

    def still_running() -> bool:
        running = next(polls)
        if running:  # the writer finishes the line between two polls
            with open(log, "a") as handle:
                handle.write("ss=0.5\nEpoch 2")
        return running

    assert list(tail_file(log, still_running, follow=True, poll_s=0)) == ["Epoch 1: loss=0.5", "Epoch 2"]


def test_a_log_not_yet_written_is_no_lines_not_an_error(tmp_path):
    assert list(tail_file(tmp_path / "missing.log", lambda: False, follow=True, poll_s=0)) == []


def test_an_exited_process_its_parent_has_not_reaped_is_not_alive():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child never exited"
            time.sleep(0.02)
        os.kill(child.pid, 0)  # a zombie still answers signal 0 ...
        assert process_alive(child.pid, None) is False  # ... but runs nothing any more
    finally:
        child.wait()
    assert process_alive(os.getpid(), None) is True


@pytest.mark.parametrize("text", [
    "{not json",
    json.dumps(["launcher", "run_id", "run_dir"]),
    json.dumps({"launcher": "local", "run_id": "r"}),  # no run_dir
    json.dumps({"launcher": "local", "run_id": "r", "run_dir": "/x", "backend": "slurm 12"}),
])
def test_a_malformed_job_json_is_no_job(tmp_path, text):
    (tmp_path / "job.json").write_text(text)
    assert JobRef.read(tmp_path) is None


def test_a_job_json_keeps_its_backend_mapping_and_the_keys_it_does_not_know(tmp_path):
    ref = JobRef(launcher="slurm", run_id="r", run_dir=str(tmp_path), backend={"job_id": "12", "label": "SLURM job 12"})
    ref.write()
    data = json.loads((tmp_path / "job.json").read_text())
    data["written_by_a_newer_aegis"] = True
    (tmp_path / "job.json").write_text(json.dumps(data))
    read = JobRef.read(tmp_path)
    # issue 23: a key this version does not know is kept in backend (for the launcher), not dropped
    assert read == dataclasses.replace(ref, backend={**ref.backend, "written_by_a_newer_aegis": True})
    assert read.describe() == "SLURM job 12"


ENTRY = "npz-a-0123456789ab"
LONGER = "npz-a-0123456789ab-b-fedcba987654"  # a valid entry name that starts with ENTRY + "-"


def test_sweeping_an_entry_leaves_another_entrys_fetch_in_progress(tmp_path):
    cache = Cache(tmp_path)
    dead = cache.temp_dir(ENTRY)
    (tmp_path / f".tmp-{ENTRY}-rm-0badc0de").mkdir()  # a removal killed half way
    in_flight = cache.temp_dir(LONGER)
    assert cache.sweep(ENTRY) and not dead.exists()
    assert in_flight.is_dir()
    assert [p.name for p in cache.temp_dirs(ENTRY)] == []
    assert cache.temp_dirs(LONGER) == [in_flight]


def _placed(cache: Cache, name: str, value: int) -> Path:
    temp = cache.temp_dir(name)
    (temp / "meta.json").write_text(json.dumps({"value": value}))
    return temp


def test_placing_an_entry_someone_else_placed_first_keeps_theirs(tmp_path):
    cache = Cache(tmp_path)
    first, second = _placed(cache, ENTRY, 1), _placed(cache, ENTRY, 2)
    assert cache.place(first, ENTRY).meta == {"value": 1}
    assert cache.place(second, ENTRY).meta == {"value": 1}
    assert not second.exists() and cache.temp_dirs() == []


def test_removing_an_entry_removes_only_it_and_refuses_names_that_are_not_entries(tmp_path):
    cache = Cache(tmp_path / "cache")
    cache.place(_placed(cache, ENTRY, 1), ENTRY)
    cache.place(_placed(cache, LONGER, 2), LONGER)
    victim = tmp_path / "victim"
    victim.mkdir()
    for name in ("../victim", str(victim), f"{ENTRY}/..", ".locks", "npz-a-0123456789ab-"):
        assert cache.remove(name) is False
    assert victim.is_dir()
    assert cache.remove(ENTRY) is True
    assert cache.get(ENTRY) is None and [e.name for e in cache.entries()] == [LONGER]
    assert cache.remove(ENTRY) is False
    assert cache.temp_dirs() == []
