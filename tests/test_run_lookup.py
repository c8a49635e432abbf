"""Which run a name means (``aegis status/logs/cancel NAME``) and which folders are runs.

The rules ``aegis.runs`` decides and no other test pinned (issue 23's mutation score): where
runs live by default, what a multirun job is called, that a folder without Aegis's or
Hydra's files is not a run, when a name is read as a path, and what an ambiguous or unknown
name tells the user.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aegis.runs import RunNotFound, default_root, find_run, iter_runs


def _run(root: Path, folder: str, *, task: str = "train", marker: str = "summary.json") -> Path:
    path = root / task / "runs" / folder
    path.mkdir(parents=True)
    if marker == ".hydra":
        (path / ".hydra").mkdir()
    else:
        (path / marker).write_text(json.dumps({"run_id": folder, "status": "completed"}))
    return path


def test_runs_live_under_outputs_unless_aegis_output_root_says_otherwise(monkeypatch, tmp_path):
    monkeypatch.delenv("AEGIS_OUTPUT_ROOT", raising=False)
    assert default_root() == Path("outputs")
    monkeypatch.setenv("AEGIS_OUTPUT_ROOT", "")
    assert default_root() == Path("outputs")
    monkeypatch.setenv("AEGIS_OUTPUT_ROOT", str(tmp_path / "elsewhere"))
    assert default_root() == tmp_path / "elsewhere"


def test_a_multirun_job_without_a_recorded_id_is_named_sweep_dash_job_number(tmp_path):
    job = tmp_path / "train" / "multiruns" / "sweep7" / "3"
    (job / ".hydra").mkdir(parents=True)
    (tmp_path / "train" / "multiruns" / "sweep7" / "multirun.yaml").write_text("{}")  # not a job
    assert [(r.path, r.run_id) for r in iter_runs(tmp_path)] == [(job, "sweep7-3")]
    assert find_run("sweep7-3", tmp_path).path == job


def test_a_folder_without_aegis_or_hydra_files_is_not_a_run(tmp_path):
    run = _run(tmp_path, "real", marker="job.json")
    (tmp_path / "train" / "runs" / "scratch").mkdir()  # a folder someone made by hand
    (tmp_path / "train" / "multiruns" / "sweep" / "0").mkdir(parents=True)  # a job that never started
    assert [r.path for r in iter_runs(tmp_path)] == [run]
    with pytest.raises(RunNotFound, match="no run 'scratch'"):
        find_run("scratch", tmp_path)


def test_a_recorded_run_id_that_is_not_a_string_is_no_id(tmp_path):
    run = _run(tmp_path, "folder")
    (run / "summary.json").write_text(json.dumps({"run_id": 42}))
    assert [r.run_id for r in iter_runs(tmp_path)] == ["folder"]
    assert find_run("fold", tmp_path).path == run


def test_a_relative_path_to_a_run_dir_is_taken_as_that_run(monkeypatch, tmp_path):
    run = _run(tmp_path, "a")
    monkeypatch.chdir(tmp_path)
    found = find_run("train/runs/a", tmp_path / "another-root")
    assert (found.path, found.run_id) == (run.resolve(), "a")


def test_a_bare_name_is_a_run_id_even_where_a_run_folder_of_that_name_sits_in_the_cwd(monkeypatch, tmp_path):
    here = tmp_path / "cwd"
    (here / "exp").mkdir(parents=True)
    (here / "exp" / "summary.json").write_text(json.dumps({"run_id": "local-copy"}))
    monkeypatch.chdir(here)
    root = tmp_path / "outputs"
    listed = _run(root, "exp1")
    assert find_run("exp", root).path == listed
    with pytest.raises(RunNotFound, match="no run 'exp2'"):
        find_run("exp2", root)


def test_a_path_that_is_not_a_run_dir_is_looked_up_as_an_id_and_not_found(tmp_path):
    _run(tmp_path, "a")
    (tmp_path / "empty").mkdir()
    for name in (str(tmp_path / "empty"), "no/such/run"):
        with pytest.raises(RunNotFound, match="no run"):
            find_run(name, tmp_path)


def test_an_unknown_name_says_what_would_be_valid_and_where_runs_are_looked_for(tmp_path):
    with pytest.raises(RunNotFound) as error:
        find_run("nothing", tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message
    assert "a unique prefix of one, or a run dir; --root DIR (or AEGIS_OUTPUT_ROOT) sets where runs live." in message


def test_an_ambiguous_prefix_names_up_to_five_matches_then_how_many_more(tmp_path):
    for i in range(5):
        _run(tmp_path, f"exp{i}")
    with pytest.raises(RunNotFound) as error:
        find_run("exp", tmp_path)
    assert str(error.value).endswith("(exp0, exp1, exp2, exp3, exp4): give more of the run id.")
    _run(tmp_path, "exp5")
    _run(tmp_path, "exp6")
    with pytest.raises(RunNotFound) as error:
        find_run("exp", tmp_path)
    assert "matches 7 runs" in str(error.value)
    assert "(exp0, exp1, exp2, exp3, exp4 and 2 more)" in str(error.value)
