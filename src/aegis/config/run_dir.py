"""The run dir (``hydra.run.dir``) or sweep dir must be a folder of its own.

``hydra.run.dir=`` (empty) made Hydra use the current directory: checkpoints, summary.json
and ``.hydra/`` landed in the repo root, and a later ``aegis`` command treating the run
dir as the run's own (cleaning it, resuming from it) would act on the repo. A run dir is
refused when it is empty, the filesystem root, the home directory, the current directory
or one above it (whose files a run's own would mix with, and whose cleaning would remove
them). Other existing folders are accepted: a re-run of the same run_id, a torchrun rank
and a pod all start in a run dir that exists already. In a multirun, each job's folder is
``hydra.sweep.subdir`` under the sweep dir: one that is empty, ``.``/``..`` or the same for
every job (no ``${hydra.job...}`` in it) would put every job's run in one folder.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from omegaconf import DictConfig

from aegis.errors import Problems


def _subdir_problem(subdir: Any) -> Optional[str]:
    text = "" if subdir is None else str(subdir).strip()
    if not text:
        return "is empty, so every job would run in the sweep dir itself"
    if text in (".", "./"):
        return "is the sweep dir itself, where every job would run"
    if ".." in text.replace("\\", "/").split("/"):
        return "climbs out of the sweep dir"
    if "${" not in text:
        return "is the same for every job, so every job would run in one folder"
    return None


def _problem(path: str) -> Optional[str]:
    if not path.strip():
        return "is empty, which Hydra takes as the current directory"
    full = os.path.realpath(os.path.expanduser(path))
    here = os.path.realpath(os.getcwd())
    if full == os.path.realpath(os.sep):
        return "is the filesystem root"
    if full == os.path.realpath(os.path.expanduser("~")):
        return "is the home directory"
    if full == here or here.startswith(full.rstrip(os.sep) + os.sep):
        return f"is the current directory{'' if full == here else ' or a folder above it'} ({here})"
    return None


def check(cfg: DictConfig, hydra: Any, found: Problems) -> None:
    """``hydra.run.dir`` for a single run, ``hydra.sweep.dir`` for a multirun."""
    if hydra is None:
        return
    mode = str(getattr(hydra.get("mode"), "name", hydra.get("mode")) or "RUN")
    key = "hydra.sweep.dir" if mode == "MULTIRUN" else "hydra.run.dir"
    try:
        path = hydra.sweep.dir if mode == "MULTIRUN" else hydra.run.dir
    except Exception:  # unresolvable: its own sentence elsewhere, or Hydra's
        return
    if path is None:
        path = ""
    problem = _problem(str(path))
    if problem and not found.covers(key):
        default = "${paths.root}/${task_name}/" + ("multiruns" if mode == "MULTIRUN" else "runs") + "/${run_id}"
        found.add(f"{key}={str(path)!r} {problem}: expected a folder of the run's own, such as the default "
                  f"{default} (set paths.root or run_id instead).", key)
    if mode == "MULTIRUN" and not found.covers("hydra.sweep.subdir"):
        from omegaconf import OmegaConf

        try:
            subdir = OmegaConf.to_container(hydra.sweep, resolve=False).get("subdir")
        except Exception:
            return
        problem = _subdir_problem(subdir)
        if problem:
            found.add(f"hydra.sweep.subdir={str(subdir or '')!r} {problem}: expected a folder per job, such as the "
                      "default ${hydra.job.num}.", "hydra.sweep.subdir")
