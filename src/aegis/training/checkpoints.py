"""Checkpoint files that survive kill -9, a full disk and corruption.

- Writes are atomic: a temp file beside the target, fsynced, then renamed. Replacing
  ``last.ckpt`` first keeps the file it replaces as ``last.prev.ckpt`` (a hard link, no
  copy), so one more intact state exists should the new one later prove unreadable.
- ``last.ckpt`` whose state was just written whole under another name (the epoch's best
  checkpoint, saved in the same epoch-end pass) becomes a hard link to that file (a copy
  where links are not possible) instead of a second serialization: same bytes, same
  atomic rename. "The same state" is checked, not assumed: the same global step, every
  tensor the same storage at the same in-place version, every other value equal.
- Temp files are removed on every exit path Python sees, and ones left by a killed
  process are swept when the next run starts.
- Resume picks the newest *intact* checkpoint: ``last.ckpt``, else ``last.prev.ckpt``,
  else the newest ``best-*.ckpt``. A torch checkpoint is a zip archive whose members carry
  CRC-32s, so reading it through ``zipfile`` proves it whole without unpickling anything.
  An unreadable file is moved aside into ``checkpoints/corrupt/``, never deleted.
- A failed write names its cause: torch reports a full disk as ``[enforce fail at
  inline_container.cc:672]``; the ``OSError`` under it says ENOSPC, and so does Aegis.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

log = logging.getLogger("aegis.training")

LAST = "last.ckpt"
PREVIOUS = "last.prev.ckpt"
BEST_GLOB = "best-*.ckpt"
CORRUPT_DIR = "corrupt"
_TMP_MARK = ".tmp-"


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; the message names the file and the cause."""

    explained = True  # aegis.training.run: one error line, no traceback


class CheckpointUnreadable(ValueError):
    """A checkpoint file that is not a whole torch checkpoint."""


def temp_path(target: Path) -> Path:
    return target.with_name(f".{target.name}{_TMP_MARK}{os.getpid()}")


def _os_error_in(exc: BaseException) -> Optional[OSError]:
    """The OSError torch's writer swallowed (it raises a RuntimeError with it as context)."""
    seen: set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError) and current.errno is not None:
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def describe_write_failure(target: Path, exc: BaseException) -> str:
    """One sentence: what could not be written, and why in the operator's words."""
    os_error = _os_error_in(exc)
    if os_error is not None and os_error.errno == errno.ENOSPC:
        try:
            free = shutil.disk_usage(target.parent).free
            where = f" ({free / 2**20:.1f} MiB free in {target.parent})"
        except OSError:
            where = f" (in {target.parent})"
        return f"no space left on device writing {target}{where}"
    if os_error is not None:
        return f"could not write {target}: {os.strerror(os_error.errno)}"
    return f"could not write {target}: {type(exc).__name__}"


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(obj: Any, target: Path, keep_previous_as: Optional[Path] = None) -> None:
    """``torch.save`` to ``target`` so that readers see the old file or the new one, whole.

    With ``keep_previous_as``, the file being replaced stays reachable under that name.
    """
    target.parent.mkdir(parents=True, exist_ok=True)

    def dump(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())

    _publish(target, dump, keep_previous_as)


def _publish(target: Path, fill: Callable[[Path], None], keep_previous_as: Optional[Path]) -> None:
    """``fill`` writes the new file whole under a temp name, which then replaces ``target``
    (the old one kept as ``keep_previous_as``); a failed write leaves no temp file, and one
    the filesystem caused is one sentence (:class:`CheckpointWriteError`)."""
    tmp = temp_path(target)
    try:
        fill(tmp)
        if keep_previous_as is not None and target.exists():
            _keep(target, keep_previous_as)
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if _os_error_in(exc) is None:  # not the filesystem's doing (e.g. an unpicklable object)
            raise
        raise CheckpointWriteError(describe_write_failure(target, exc)) from exc
    fsync_dir(target.parent)


def _keep(current: Path, previous: Path) -> None:
    """``previous`` becomes a second name of ``current``'s data, atomically."""
    link = temp_path(previous)
    link.unlink(missing_ok=True)
    try:
        os.link(current, link)
    except OSError:  # a filesystem without hard links: copy instead
        shutil.copyfile(current, link)
    os.replace(link, previous)


def link_atomically(source: Path, target: Path, keep_previous_as: Optional[Path] = None) -> None:
    """``target`` becomes a second name of ``source`` (already written whole and fsynced),
    with :func:`write_atomically`'s guarantees: readers see the old file or the new one."""
    def link(tmp: Path) -> None:
        tmp.unlink(missing_ok=True)
        try:
            os.link(source, tmp)
        except OSError:  # a filesystem without hard links: copy instead
            with open(source, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
                dst.flush()
                os.fsync(dst.fileno())

    _publish(target, link, keep_previous_as)


def state_fingerprint(obj: Any) -> Any:
    """What a checkpoint holds, comparable without reading a tensor's data: a tensor is its
    storage, shape, dtype and in-place version counter (an optimizer step or any in-place
    change of the weights bumps it), any other leaf its value. Objects it does not know
    compare by identity, so an unknown state never passes for an equal one."""
    if isinstance(obj, torch.Tensor):
        return ("tensor", obj.device.type, obj.data_ptr(), obj.storage_offset(), tuple(obj.shape), obj.dtype,
                obj._version)
    if isinstance(obj, dict):
        return ("dict", tuple((key, state_fingerprint(value)) for key, value in obj.items()))
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, tuple(state_fingerprint(value) for value in obj))
    if obj is None or isinstance(obj, (bool, int, float, str, bytes, Path)):
        return obj
    return ("object", id(obj))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint plugin, writing through :func:`write_atomically`; ``last.ckpt``
    holding the state of the file written just before it is linked to that file
    (``AEGIS_LAST_LINK=0``: always serialized, for bench/step_rate.py's before/after)."""

    def __init__(self) -> None:
        super().__init__()
        self._written: Optional[tuple[Path, Any]] = None  # the last local file written whole, and its state

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        if "://" in str(path):  # remote filesystems have their own semantics
            return super().save_checkpoint(checkpoint, path, storage_options)
        target = Path(path)
        keep = target.with_name(PREVIOUS) if target.name == LAST else None
        self_written, self._written = self._written, None
        state = state_fingerprint(checkpoint)
        twin = self_written[0] if self_written and self_written[1] == state else None
        if (target.name == LAST and twin is not None and twin != target and twin.parent == target.parent
                and twin.is_file() and os.environ.get("AEGIS_LAST_LINK", "1") != "0"):
            link_atomically(twin, target, keep_previous_as=keep)
        else:
            write_atomically(checkpoint, target, keep_previous_as=keep)
        self._written = (target, state)

    def remove_checkpoint(self, path: Any) -> None:
        if self._written is not None and str(self._written[0]) == str(path):
            self._written = None
        super().remove_checkpoint(path)


def _pid_alive(pid: int) -> bool:
    from aegis.core.lifecycle import process_alive

    # This process has written nothing yet when it sweeps: a file with its pid is a predecessor's.
    return pid != os.getpid() and bool(process_alive(pid, host=None))


def sweep_stale_temp_files(directories: Iterable[Path]) -> list[Path]:
    """Remove temp files whose writer is gone (a kill -9 mid-save leaves one behind)."""
    removed = []
    for directory in directories:
        if not directory.is_dir():
            continue
        for path in directory.glob(f".*{_TMP_MARK}*"):
            pid = path.name.rsplit(_TMP_MARK, 1)[-1]
            if pid.isdigit() and _pid_alive(int(pid)):
                continue
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def check_intact(path: Path) -> None:
    """Raise ``CheckpointUnreadable`` unless ``path`` is a whole torch zip checkpoint."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CheckpointUnreadable(f"cannot read it ({os.strerror(exc.errno or 0)})") from None
    if size == 0:
        raise CheckpointUnreadable("it is empty")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            names = archive.namelist()
    except zipfile.BadZipFile:
        raise CheckpointUnreadable(f"it is not a whole checkpoint archive ({size} bytes; truncated?)") from None
    except (OSError, EOFError, ValueError) as exc:
        raise CheckpointUnreadable(f"it cannot be read to its end ({exc})") from None
    if bad is not None:
        raise CheckpointUnreadable(f"its member {bad} fails its checksum")
    if not any(name.endswith("data.pkl") for name in names):
        raise CheckpointUnreadable("it holds no checkpoint data (no data.pkl)")


@dataclass(frozen=True)
class ResumeChoice:
    path: Optional[Path]
    fell_back_from: tuple[str, ...] = ()  # "last.ckpt: it is empty", one per unreadable candidate


def candidates(checkpoint_dir: Path) -> list[Path]:
    """Where an automatic resume may continue from, newest state first."""
    found = [checkpoint_dir / LAST, checkpoint_dir / PREVIOUS]
    best = sorted(checkpoint_dir.glob(BEST_GLOB), key=lambda p: p.stat().st_mtime, reverse=True)
    return [p for p in found if p.is_file()] + best


def move_aside(path: Path) -> Path:
    """Keep an unreadable checkpoint for inspection, out of every resume path."""
    corrupt = path.parent / CORRUPT_DIR
    corrupt.mkdir(exist_ok=True)
    target = corrupt / f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    os.replace(path, target)
    return target


def choose_auto_resume(checkpoint_dir: Path, *, rank_zero: bool) -> ResumeChoice:
    """The newest intact checkpoint in ``checkpoint_dir`` (None: start fresh).

    Every rank reaches the same answer from the same files; only rank 0 moves an
    unreadable one aside (another rank still reading it keeps its open file).
    """
    skipped = []
    for path in candidates(checkpoint_dir):
        try:
            check_intact(path)
        except CheckpointUnreadable as why:
            skipped.append(f"{path.name}: {why}")
            if rank_zero:
                try:
                    kept = move_aside(path)
                    skipped[-1] += f" (moved to {kept.relative_to(checkpoint_dir)})"
                except OSError:
                    pass  # another rank's view, or a read-only volume: leave it
            continue
        return ResumeChoice(path, tuple(skipped))
    return ResumeChoice(None, tuple(skipped))
