"""Facts about this machine that validation needs, found without importing torch.

A config that trains here (a launcher whose ``trains_here`` is true) can ask for a GPU the
machine lacks or resume from a file that is not a checkpoint; torch would find out only
after the run dir, the tracking run and the data exist. These answers come from the
filesystem and the environment, in microseconds.
"""

from __future__ import annotations

import glob
import os
import re
import sys
from typing import Optional

# torch.save writes a zip archive; files from torch < 1.6 (_use_new_zipfile_serialization=False)
# are a pickle stream, which starts with the PROTO opcode.
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = b"\x80"


def _visible_limit() -> Optional[int]:
    """How many GPUs ``CUDA_VISIBLE_DEVICES`` lets a process see (None: not set, no limit)."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    ids = [part for part in value.split(",") if part.strip()]
    if not ids or ids[0].strip() == "-1":
        return 0
    return len(ids)


def _nvidia_devices() -> int:
    """NVIDIA GPUs this process can open: /dev/nvidia<N> (in a container, only those the
    device plugin mounted), else the driver's list in /proc (kernel-wide), else WSL's /dev/dxg."""
    nodes = sum(1 for path in glob.glob("/dev/nvidia*") if re.fullmatch(r"/dev/nvidia\d+", path))
    if nodes:
        return nodes
    listed = len(glob.glob("/proc/driver/nvidia/gpus/*"))
    return listed or (1 if os.path.exists("/dev/dxg") else 0)


def _amd_devices() -> int:
    """ROCm GPUs (torch's ``cuda`` on ROCm): the KFD device plus one render node each."""
    if not os.path.exists("/dev/kfd"):
        return 0
    return max(1, len(glob.glob("/dev/dri/renderD*")))


def gpu_count() -> int:
    """GPUs a process started here could use as ``cuda``."""
    found = _nvidia_devices() or _amd_devices()
    limit = _visible_limit()
    return found if limit is None else min(found, limit)


def is_macos() -> bool:
    return sys.platform == "darwin"


def has_torch_xla() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch_xla") is not None


def has_module(name: str) -> bool:
    """``name`` can be imported here (found without importing it)."""
    import importlib.util

    return importlib.util.find_spec(name) is not None


def in_torchrun_gang() -> bool:
    """True in a process torchrun (or a PyTorchJob's torchrun) started."""
    return "TORCHELASTIC_RUN_ID" in os.environ


def in_slurm_gang() -> bool:
    """True in one of several tasks of a SLURM job (``hydra/launcher=submitit_slurm``)."""
    return int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be a checkpoint torch can load, or None when it looks like one."""
    if os.path.isdir(path):
        return "is a directory"
    if not os.path.exists(path):
        return "does not exist"
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(_ZIP_MAGIC))
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if not head:
        return "is an empty file"
    if head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_PROTO):
        return None
    return "is not a checkpoint (torch.save writes a zip archive or a pickle, this file is neither)"


def blocking_file(path: str) -> Optional[str]:
    """The existing non-directory at ``path`` or above it, which would stop ``mkdir -p path``."""
    current = os.path.abspath(path)
    while True:
        if os.path.exists(current):
            return None if os.path.isdir(current) else current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


# Kernel filesystems: nothing a run writes can be created there (mkdir fails with ENOENT or EPERM).
KERNEL_FILESYSTEMS = ("/proc", "/sys", "/dev")


def unwritable_root(path: str) -> Optional[str]:
    """Why run dirs cannot be created under ``path`` (a kernel filesystem, or the nearest
    existing folder not writable here), or None. Checked before Hydra's own ``mkdir``, which
    failed with a traceback (``paths.root=/proc/self``)."""
    full = os.path.realpath(os.path.abspath(path))
    for top in KERNEL_FILESYSTEMS:
        if full == top or full.startswith(top + os.sep):
            return f"is under {top}, a kernel filesystem where no folder can be created"
    current = full
    while not os.path.exists(current):
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent
    if os.path.isdir(current) and not os.access(current, os.W_OK | os.X_OK):
        return f"cannot be created: {current} is not writable by this user"
    return None
