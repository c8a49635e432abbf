"""Rules of ``launcher=torchrun``: a rank within the nodes, a rendezvous port for several
nodes, DDP for several processes, a strategy shape that agrees with torchrun's, and a
config its ranks can compose with launcher=local."""

from __future__ import annotations

from omegaconf import DictConfig

from aegis.config.where import STRATEGY_SHAPE
from aegis.errors import Problems
from aegis.launch.children import check_children_compose

# Keys a torchrun gang's shape is made of: its rules skip once one of them was refused.
GANG_KEYS = ("launcher.nproc_per_node", "launcher.nnodes", "launcher.node_rank", "launcher.master_port",
             *STRATEGY_SHAPE)


def check(cfg: DictConfig, found: Problems) -> None:
    if found.refused(*GANG_KEYS):
        return
    launcher, strategy = cfg.launcher, cfg.strategy
    if launcher.node_rank >= launcher.nnodes:
        found.add(
            f"launcher.node_rank={launcher.node_rank} is invalid: expected 0 <= node_rank < "
            f"launcher.nnodes ({launcher.nnodes})."
        )
    if launcher.nnodes > 1 and launcher.master_port is None:
        found.add(
            "launcher.master_port must be set when launcher.nnodes > 1: every node has to "
            "reach the same launcher.master_addr:master_port."
        )
    world = launcher.nproc_per_node * launcher.nnodes
    if world > 1 and strategy.name != "ddp":
        found.add(
            f"launcher=torchrun starts {world} processes but strategy={strategy.name} trains in "
            "one: add strategy=ddp."
        )
    if strategy.name != "ddp":
        return
    for key, flag in (("devices", "nproc_per_node"), ("num_nodes", "nnodes")):
        value = strategy.get(key)
        if value is not None and value != launcher[flag]:
            found.add(
                f"strategy.{key}={value} disagrees with launcher.{flag}={launcher[flag]}: expected "
                f"strategy.{key}={launcher[flag]} or null (read from torchrun)."
            )
    if not found:  # the ranks re-enter train.py with launcher=local: they must compose it too
        check_children_compose(cfg, found, "the ranks")
