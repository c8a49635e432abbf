"""OmegaConf resolvers that make one run dir per run, across ranks and restarts.

``${aegis.stamp:}`` names a new run: a timestamp plus a random suffix, so two runs
started in the same second never share a directory. It is resolved once per process
(cached), and a process that torchrun started without a pinned run dir agrees on the
stamp with its gang through torchrun's own TCP store, so
``torchrun --nproc_per_node=2 train.py`` makes exactly one run dir, like
the torchrun launcher (which pins the dir for its children explicitly).
"""

from __future__ import annotations

import os
import secrets
import time
from datetime import timedelta
from typing import Optional

from omegaconf import OmegaConf

_STORE_KEY = "aegis/run_stamp"


def global_rank() -> int:
    """This process's rank in a torchrun gang, or among the tasks of a SLURM job (0 otherwise)."""
    return int(os.environ.get("RANK") or os.environ.get("SLURM_PROCID") or 0)


def in_torchrun_gang() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def new_stamp() -> str:
    return time.strftime("%Y-%m-%d_%H-%M-%S") + "_" + secrets.token_hex(3)


def _agree_on_stamp(candidate: str) -> str:
    """First writer wins in torchrun's agent store; every rank reads the same value."""
    from torch.distributed import TCPStore  # only in a gang, which trains anyway

    store = TCPStore(
        host_name=os.environ["MASTER_ADDR"],
        port=int(os.environ["MASTER_PORT"]),
        is_master=False,
        timeout=timedelta(seconds=120),
    )
    return store.compare_set(_STORE_KEY, "", candidate).decode()


def run_stamp() -> str:
    candidate = new_stamp()
    if in_torchrun_gang():
        return _agree_on_stamp(candidate)
    return candidate


def rank_suffix() -> str:
    """'' on rank 0, '.rank<N>' elsewhere: per-rank log files in the shared run dir."""
    rank = global_rank()
    return "" if rank == 0 else f".rank{rank}"


def rank_zero_only(value: str) -> Optional[str]:
    """``value`` on rank 0, null elsewhere (e.g. ``hydra.output_subdir``: one writer)."""
    return value if global_rank() == 0 else None


def register_resolvers() -> None:
    """Register Aegis's resolvers (idempotent; call before composing)."""
    resolvers = {
        "aegis.stamp": (run_stamp, True),
        "aegis.rank_suffix": (rank_suffix, False),
        "aegis.rank_zero_only": (rank_zero_only, False),
    }
    for name, (fn, cache) in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=cache)
