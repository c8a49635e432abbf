"""Checkpoint files, in-process without training (``aegis.training.checkpoints``, issue 23's
mutation score): what a failed write says, what replacing ``last.ckpt`` keeps, when
``last.ckpt`` is a link to the epoch's best file, which temp files a new run sweeps, and
which file an automatic resume picks and what it says about the ones it skips.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from aegis.training import checkpoints as ck  # noqa: E402
from aegis.training.checkpoints import (AtomicCheckpointIO, CheckpointUnreadable, CheckpointWriteError,  # noqa: E402
                                        check_intact, choose_auto_resume, describe_write_failure,
                                        link_atomically, state_fingerprint, sweep_stale_temp_files,
                                        write_atomically)


def _save(path: Path, value: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"w": torch.tensor([value]), "global_step": int(value)}, path)
    return path


def _value(path: Path) -> float:
    return float(torch.load(path, weights_only=True)["w"][0])


def _torch_writer_error(code: int) -> RuntimeError:
    """What torch's writer raises for a failed write: a RuntimeError over the OSError."""
    try:
        try:
            raise OSError(code, os.strerror(code))
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos")
    except RuntimeError as exc:
        return exc


def test_a_full_disk_is_named_with_the_space_left_and_the_folder(tmp_path):
    target = tmp_path / "last.ckpt"
    message = describe_write_failure(target, _torch_writer_error(errno.ENOSPC))
    assert message.startswith(f"no space left on device writing {target} (")
    assert message.endswith(f" MiB free in {tmp_path})")
    gone = tmp_path / "gone" / "last.ckpt"
    assert describe_write_failure(gone, _torch_writer_error(errno.ENOSPC)) == (
        f"no space left on device writing {gone} (in {gone.parent})")


def test_other_write_failures_name_the_file_and_the_cause(tmp_path):
    target = tmp_path / "last.ckpt"
    assert describe_write_failure(target, _torch_writer_error(errno.EACCES)) == (
        f"could not write {target}: Permission denied")
    assert describe_write_failure(target, OSError(errno.EIO, "x")) == f"could not write {target}: Input/output error"
    assert describe_write_failure(target, ValueError("odd")) == f"could not write {target}: ValueError"
    no_errno = RuntimeError("outer")
    no_errno.__cause__ = OSError("no errno")
    assert describe_write_failure(target, no_errno) == f"could not write {target}: RuntimeError"
    looped = RuntimeError("a")
    looped.__context__ = RuntimeError("b")
    looped.__context__.__context__ = looped  # a cycle ends the search, not the process
    assert describe_write_failure(target, looped) == f"could not write {target}: RuntimeError"


def test_replacing_last_keeps_the_old_file_as_previous_and_leaves_no_temp_file(tmp_path):
    last, previous = tmp_path / "ckpts" / "last.ckpt", tmp_path / "ckpts" / "last.prev.ckpt"
    write_atomically({"w": torch.tensor([1.0])}, last, keep_previous_as=previous)  # makes the folder
    assert not previous.exists()
    old_inode = last.stat().st_ino
    write_atomically({"w": torch.tensor([2.0])}, last, keep_previous_as=previous)
    assert (_value(last), _value(previous)) == (2.0, 1.0)
    assert previous.stat().st_ino == old_inode  # the same data under a second name, not a copy
    write_atomically({"w": torch.tensor([3.0])}, tmp_path / "ckpts" / "best.ckpt")
    assert sorted(p.name for p in last.parent.iterdir()) == ["best.ckpt", "last.ckpt", "last.prev.ckpt"]


def test_a_state_that_cannot_be_saved_raises_its_own_error_and_leaves_the_old_file(tmp_path):
    last = tmp_path / "last.ckpt"
    write_atomically({"w": torch.tensor([1.0])}, last)
    with pytest.raises(Exception) as error:
        write_atomically({"f": lambda: 0}, last)
    assert not isinstance(error.value, CheckpointWriteError)
    assert _value(last) == 1.0 and [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_a_failed_write_is_one_error_naming_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    last = tmp_path / "last.ckpt"
    write_atomically({"w": torch.tensor([1.0])}, last)

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ck.os, "fsync", full)
    with pytest.raises(CheckpointWriteError, match=f"no space left on device writing {last}"):
        write_atomically({"w": torch.tensor([2.0])}, last)
    monkeypatch.undo()
    assert _value(last) == 1.0 and [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_linking_last_to_a_whole_file_keeps_the_previous_last(tmp_path):
    best, last, previous = _save(tmp_path / "best.ckpt", 2.0), tmp_path / "last.ckpt", tmp_path / "last.prev.ckpt"
    _save(last, 1.0)
    link_atomically(best, last, keep_previous_as=previous)
    assert last.stat().st_ino == best.stat().st_ino and _value(previous) == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt", "last.ckpt", "last.prev.ckpt"]


def test_where_hard_links_fail_last_and_previous_are_copies(tmp_path, monkeypatch):
    best, last, previous = _save(tmp_path / "best.ckpt", 2.0), tmp_path / "last.ckpt", tmp_path / "last.prev.ckpt"
    _save(last, 1.0)

    def no_links(src, dst):
        raise OSError(errno.EPERM, "links not supported")

    monkeypatch.setattr(ck.os, "link", no_links)
    link_atomically(best, last, keep_previous_as=previous)
    assert (_value(last), _value(previous)) == (2.0, 1.0)
    assert last.stat().st_ino != best.stat().st_ino
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt", "last.ckpt", "last.prev.ckpt"]


def test_linking_from_a_missing_file_is_one_error_naming_the_target(tmp_path):
    last = _save(tmp_path / "last.ckpt", 1.0)
    with pytest.raises(CheckpointWriteError, match=f"could not write {last}: No such file or directory"):
        link_atomically(tmp_path / "gone.ckpt", last)
    assert _value(last) == 1.0 and [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_a_state_fingerprint_changes_with_any_change_of_the_state():
    w = torch.zeros(3)
    state = {"w": w, "step": 3, "name": "m", "path": Path("x"), "none": None, "items": [1, (2, 3)]}
    same = state_fingerprint(state)
    assert state_fingerprint(dict(state)) == same
    w.add_(1)  # an optimizer step: same storage, new version
    assert state_fingerprint(state) != same
    assert state_fingerprint({**state, "w": w.clone()}) != state_fingerprint(state)
    assert state_fingerprint(w[1:]) != state_fingerprint(w[:2])  # same storage, other offset
    assert state_fingerprint(w.view(3, 1)) != state_fingerprint(w)
    assert state_fingerprint(w.to(torch.float64)) != state_fingerprint(w)
    assert state_fingerprint({**state, "step": 4}) != state_fingerprint(state)
    assert state_fingerprint([1, 2]) != state_fingerprint((1, 2))
    assert state_fingerprint({"a": 1}) != state_fingerprint({"b": 1})
    thing = object()
    assert state_fingerprint(thing) == state_fingerprint(thing) != state_fingerprint(object())


def _checkpoint(w: torch.Tensor, step: int) -> dict:
    return {"state_dict": {"w": w}, "global_step": step}


def test_last_at_the_step_of_the_best_checkpoint_is_that_file_otherwise_its_own(tmp_path, monkeypatch):
    monkeypatch.delenv("AEGIS_LAST_LINK", raising=False)
    io, w = AtomicCheckpointIO(), torch.ones(2)
    best, last = tmp_path / "best-epoch=0.ckpt", tmp_path / "last.ckpt"
    io.save_checkpoint(_checkpoint(w, 10), best)
    io.save_checkpoint(_checkpoint(w, 10), last)
    assert last.stat().st_ino == best.stat().st_ino
    io.save_checkpoint(_checkpoint(w, 10), last)  # last after last: written, not linked to itself
    assert last.is_file() and last.stat().st_ino != best.stat().st_ino
    assert (tmp_path / "last.prev.ckpt").stat().st_ino == best.stat().st_ino
    io.save_checkpoint(_checkpoint(w, 20), best)
    w.add_(1)  # trained on: another state
    io.save_checkpoint(_checkpoint(w, 20), last)
    assert last.stat().st_ino != best.stat().st_ino
    assert torch.load(last, weights_only=True)["state_dict"]["w"].tolist() == [2.0, 2.0]


def test_last_is_not_linked_to_a_removed_best_file_another_folder_or_when_switched_off(tmp_path, monkeypatch):
    w = torch.ones(2)
    io, best, last = AtomicCheckpointIO(), tmp_path / "best-epoch=0.ckpt", tmp_path / "last.ckpt"
    io.save_checkpoint(_checkpoint(w, 10), best)
    io.remove_checkpoint(best)
    io.save_checkpoint(_checkpoint(w, 10), last)
    assert last.is_file() and not best.exists()
    other = tmp_path / "other" / "best-epoch=0.ckpt"
    io.save_checkpoint(_checkpoint(w, 10), other)
    io.save_checkpoint(_checkpoint(w, 10), last)
    assert last.stat().st_ino != other.stat().st_ino
    monkeypatch.setenv("AEGIS_LAST_LINK", "0")
    io.save_checkpoint(_checkpoint(w, 10), best)
    io.save_checkpoint(_checkpoint(w, 10), last)
    assert last.stat().st_ino != best.stat().st_ino
    monkeypatch.setenv("AEGIS_LAST_LINK", "1")
    io.save_checkpoint(_checkpoint(w, 10), best)
    io.remove_checkpoint(tmp_path / "unrelated.ckpt")  # another file's removal forgets nothing
    io.save_checkpoint(_checkpoint(w, 10), last)
    assert last.stat().st_ino == best.stat().st_ino
    io.save_checkpoint(_checkpoint(w, 10), best)
    io.save_checkpoint(_checkpoint(w, 10), tmp_path / "best-epoch=1.ckpt")  # not last: always written
    assert (tmp_path / "best-epoch=1.ckpt").stat().st_ino != best.stat().st_ino


def test_a_new_run_sweeps_temp_files_whose_writer_is_gone_and_keeps_a_live_writers(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    try:
        ckpts = tmp_path / "checkpoints"
        ckpts.mkdir()
        names = {"live": f".last.ckpt.tmp-{live.pid}", "gone": f".last.ckpt.tmp-{gone.pid}",
                 "mine": f".best.ckpt.tmp-{os.getpid()}", "odd": ".last.ckpt.tmp-xyz"}
        for name in names.values():
            (ckpts / name).write_bytes(b"half")
        (ckpts / "last.ckpt").write_bytes(b"whole")
        removed = sweep_stale_temp_files([ckpts, tmp_path / "missing", tmp_path / "a-file"])
        assert sorted(p.name for p in removed) == sorted([names["gone"], names["mine"], names["odd"]])
        assert sorted(p.name for p in ckpts.iterdir()) == sorted([names["live"], "last.ckpt"])
    finally:
        live.kill()
        live.wait()


def test_an_intact_checkpoint_passes_and_each_kind_of_damage_is_named(tmp_path):
    good = _save(tmp_path / "good.ckpt", 1.0)
    check_intact(good)
    data = good.read_bytes()

    def damaged(name: str, content: bytes) -> str:
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(CheckpointUnreadable) as why:
            check_intact(path)
        return str(why.value)

    assert damaged("empty.ckpt", b"") == "it is empty"
    assert damaged("cut.ckpt", data[: len(data) // 2]) == (
        f"it is not a whole checkpoint archive ({len(data) // 2} bytes; truncated?)")
    with pytest.raises(CheckpointUnreadable, match=r"^cannot read it \(No such file or directory\)$"):
        check_intact(tmp_path / "missing.ckpt")
    with zipfile.ZipFile(tmp_path / "plain.zip", "w") as archive:
        archive.writestr("archive/other.txt", "not a checkpoint")
    assert damaged("plain.ckpt", (tmp_path / "plain.zip").read_bytes()) == "it holds no checkpoint data (no data.pkl)"
    with zipfile.ZipFile(tmp_path / "stored.zip", "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", b"A" * 64)
    flipped = (tmp_path / "stored.zip").read_bytes().replace(b"A" * 64, b"A" * 63 + b"B")
    assert damaged("flipped.ckpt", flipped) == "its member archive/data.pkl fails its checksum"


def test_resume_takes_the_newest_intact_file_and_moves_the_unreadable_ones_aside(tmp_path):
    ckpts = tmp_path / "checkpoints"
    (ckpts / "last.ckpt").parent.mkdir()
    (ckpts / "last.ckpt").write_bytes(b"")
    (ckpts / "last.prev.ckpt").write_bytes(b"PK\x03\x04cut")
    older = _save(ckpts / "best-epoch=1.ckpt", 1.0)
    newer = _save(ckpts / "best-epoch=3.ckpt", 3.0)
    os.utime(older, (1_000_000, 1_000_000))
    other_rank = choose_auto_resume(ckpts, rank_zero=False)
    assert other_rank.path == newer and other_rank.fell_back_from[0] == "last.ckpt: it is empty"
    assert (ckpts / "last.ckpt").exists() and not (ckpts / "corrupt").exists()  # only rank 0 moves files
    choice = choose_auto_resume(ckpts, rank_zero=True)
    assert choice.path == newer
    assert [why.split(" (moved to corrupt/")[0] for why in choice.fell_back_from] == [
        "last.ckpt: it is empty", "last.prev.ckpt: it is not a whole checkpoint archive (7 bytes; truncated?)"]
    assert sorted(p.name.split(".ckpt.")[0] for p in (ckpts / "corrupt").iterdir()) == ["last", "last.prev"]
    assert all(p.name.endswith(f"-{os.getpid()}") for p in (ckpts / "corrupt").iterdir())
    assert choose_auto_resume(ckpts, rank_zero=True) == ck.ResumeChoice(newer, ())
    assert choose_auto_resume(tmp_path / "nothing-here", rank_zero=True) == ck.ResumeChoice(None, ())
