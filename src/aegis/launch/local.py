"""``launcher=local``: train in this process (CPU or GPU, or one rank of a gang)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

from aegis.launch.base import Launcher, RunContext


@dataclass
class LocalPlan:
    cfg: DictConfig
    ctx: RunContext


class LocalLauncher(Launcher[LocalPlan, int]):
    name = "local"

    def render(self, cfg: DictConfig, ctx: RunContext) -> LocalPlan:
        return LocalPlan(cfg, ctx)

    def submit(self, rendered: LocalPlan) -> int:
        # Imported here: this is where torch and lightning are first needed.
        from aegis.training.run import train

        return train(rendered.cfg, rendered.ctx).exit_code

    def follow(self, handle: int) -> int:
        return handle
