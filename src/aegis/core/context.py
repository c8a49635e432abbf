"""Where a run lives and how it was asked for: the ``RunContext`` every launcher renders with.

Resolved once by the parent from Hydra's config; ranks, pods and retries receive ``run_dir`` and
``run_id`` pinned through ``child_overrides``. It sits here, below the launchers, because the
Kubernetes plumbing (``aegis.k8s``), training (``aegis.training``) and the search
(``aegis.tune``) read it as well, and none of them may import a launcher. No torch.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf


@dataclass(frozen=True)
class RunContext:
    """Where a run lives and how it was asked for, resolved once by the parent.

    Children (ranks, pods, retries) receive ``run_dir`` and ``run_id`` pinned through
    ``child_overrides`` and never resolve them again.
    """

    run_dir: Path
    run_id: str
    task_overrides: tuple[str, ...]
    config_name: str
    config_dirs: tuple[str, ...] = ()
    entrypoint: str = "train.py"
    multirun: bool = False
    job_num: int = 0

    @classmethod
    def from_hydra(cls, cfg: DictConfig, hydra_cfg: DictConfig) -> "RunContext":
        multirun = hydra_cfg.mode == RunMode.MULTIRUN
        run_id = str(cfg.run_id)
        if multirun:
            run_id = f"{run_id}-{hydra_cfg.job.num}"
        config_dirs = tuple(
            source.path
            for source in hydra_cfg.runtime.config_sources
            if source.provider == "command-line" and source.schema == "file"
        )
        return cls(
            run_dir=Path(hydra_cfg.runtime.output_dir).resolve(),
            run_id=run_id,
            task_overrides=tuple(OmegaConf.to_container(hydra_cfg.overrides.task)),
            config_name=str(hydra_cfg.job.config_name),
            config_dirs=config_dirs,
            entrypoint=_entrypoint(),
            multirun=multirun,
            job_num=int(hydra_cfg.job.num) if multirun else 0,
        )

    def config_flags(self) -> list[str]:
        """``--config-name``/``--config-dir`` flags that make a child compose from the same config."""
        return [f"--config-name={self.config_name}", *(f"--config-dir={d}" for d in self.config_dirs)]

    def child_overrides(self, **replace: str) -> list[str]:
        """The user's overrides with ``replace`` applied and the run dir pinned.

        Overrides of a replaced group (``launcher=...``, ``launcher.x=...``) are dropped:
        the child composes a different option of that group.
        """
        pinned = {**replace, "run_id": self.run_id, "hydra.run.dir": str(self.run_dir)}
        kept = [o for o in self.task_overrides if override_key(o).split(".")[0] not in pinned
                and override_key(o) not in pinned]
        return kept + [f"{key}={quote_override(value)}" for key, value in pinned.items()]


def quote_override(value: str) -> str:
    """Quote a value for Hydra's override grammar unless it is plainly safe."""
    if re.fullmatch(r"[\w./:@-]+", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def override_key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0].split("@", 1)[0]


def _entrypoint() -> str:
    script = sys.argv[0]
    if script.endswith(".py") and os.path.isfile(script):
        return os.path.abspath(script)
    return str(Path(__file__).resolve().parents[3] / "train.py")
