"""How the user asked for a run, passed down to the processes a launcher starts.

A torchrun rank or a pod no longer sees the ``python train.py launcher=...`` the user typed;
the launcher gives it ``$AEGIS_LAUNCH`` (``launch_env``) and a pod the image it was rendered
with, so the run's lineage (``aegis.training.lineage``) names the real launch. The launchers
and the pod renderer (``aegis.k8s.pod``) write these variables and training reads them, so
the names live here, below all three. No torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

LAUNCH_ENV = "AEGIS_LAUNCH"  # set by a launcher for the processes it starts (see launch_env)
IMAGE_ENV = "AEGIS_IMAGE"  # the image reference a pod was rendered with (digest-pinned when known)
NODE_NAME_ENV = "NODE_NAME"  # a pod's node, through the downward API (spec.nodeName)
# In a pod (no .git in the image): the commit docker/build.sh recorded for the image, and its dirty flag.
IMAGE_COMMIT_ENV = "AEGIS_IMAGE_GIT_COMMIT"
IMAGE_DIRTY_ENV = "AEGIS_IMAGE_GIT_DIRTY"


@dataclass(frozen=True)
class LaunchOrigin:
    """How the user asked for the run: the launcher and overrides of the ``python train.py``
    they typed, which a child process (a torchrun rank, a pod) no longer sees in its own
    overrides (those name the in-process launcher, with the run dir pinned)."""

    launcher: str
    overrides: tuple[str, ...]
    entrypoint: str = "train.py"
    config_name: str = "train"

    def as_env(self) -> str:
        return json.dumps({"launcher": self.launcher, "overrides": list(self.overrides),
                           "entrypoint": self.entrypoint, "config_name": self.config_name})

    @classmethod
    def from_env(cls, value: Optional[str]) -> Optional["LaunchOrigin"]:
        """The origin a parent passed down, or None for a missing or malformed value."""
        if not value:
            return None
        try:
            raw = json.loads(value)
            return cls(launcher=str(raw["launcher"]), overrides=tuple(str(o) for o in raw["overrides"]),
                       entrypoint=str(raw.get("entrypoint") or "train.py"),
                       config_name=str(raw.get("config_name") or "train"))
        except (ValueError, KeyError, TypeError):
            return None


def launch_env(launcher: str, ctx: Any) -> dict[str, str]:
    """The environment a launcher gives the processes it starts, so their lineage names the
    launch the user asked for (``ctx`` is the parent's RunContext)."""
    inherited = LaunchOrigin.from_env(os.environ.get(LAUNCH_ENV))
    if inherited is not None:  # already a child of another launch (a search trial's gang)
        return {LAUNCH_ENV: inherited.as_env()}
    origin = LaunchOrigin(launcher, tuple(ctx.task_overrides), Path(ctx.entrypoint).name, ctx.config_name)
    return {LAUNCH_ENV: origin.as_env()}
