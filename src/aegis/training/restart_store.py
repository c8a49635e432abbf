"""A restarted torchrun gang forms its process group under keys of its own.

torchrun (``--max-restarts``) restarts the ranks against the same agent store
(``TORCHELASTIC_USE_AGENT_STORE``, same ``MASTER_PORT``), and the process group's keys
(``default_pg/0//cpu//0/<rank>``: each rank's gloo address) carry no attempt in their name.
A restarted rank that reaches ``init_process_group`` before its peer has re-registered reads
the dead attempt's address: gloo's "connectFullMesh failed ... Connection refused" (seen
here whenever rank 0, which opens the MLflow run first, came up seconds after rank 1), and
the restart that should have recovered the run fails it. So on a restart each rank joins
the process group itself, before Lightning would, through ``PrefixStore("aegis/restart_<n>")``
over the same store; Lightning then finds the group initialized and uses it.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Optional


def restart_count() -> int:
    try:
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)
    except ValueError:
        return 0


def join_restarted_gang(backend: Optional[str], on_gpu: bool, timeout: timedelta) -> bool:
    """Initialize the default process group under this restart's prefix; True if it did.

    Only on a restart of a torchrun gang that uses the agent's store; a first attempt (and
    anything else) is left to Lightning as it always was."""
    restart = restart_count()
    if restart == 0 or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return False
    import torch.distributed as dist

    if not dist.is_available() or dist.is_initialized():
        return False
    world = int(os.environ["WORLD_SIZE"])
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world, is_master=False,
                          timeout=timeout)
    dist.init_process_group(backend or ("nccl" if on_gpu else "gloo"),
                            store=dist.PrefixStore(f"aegis/restart_{restart}", store),
                            rank=int(os.environ["RANK"]), world_size=world, timeout=timeout)
    return True
