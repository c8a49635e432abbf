"""The config of ``launcher=torchrun``: torchrun's own flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from aegis.config import checks as c
from aegis.config.checks import meta
from aegis.config.schema import LauncherConfig


@dataclass
class TorchrunLauncherConfig(LauncherConfig):
    """torchrun flags. ``master_port: null`` on one node means ``--standalone`` (a free port)."""

    name: str = "torchrun"
    nproc_per_node: int = field(default=2, metadata=meta(c.at_least(1)))
    nnodes: int = field(default=1, metadata=meta(c.at_least(1)))
    node_rank: int = field(default=0, metadata=meta(c.at_least(0)))
    master_addr: str = field(default="127.0.0.1", metadata=meta(c.non_empty()))
    master_port: Optional[int] = field(default=None, metadata=meta(c.port()))
    max_restarts: int = field(default=0, metadata=meta(c.at_least(0)))
    monitor_interval_s: float = field(default=0.1, metadata=meta(c.greater_than(0)))
