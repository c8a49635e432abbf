"""Finding runs under the outputs root by run id, a unique prefix of one, or a path.

A run dir is any directory with Aegis's own files in it (``job.json``, ``summary.json``)
or Hydra's record (``.hydra``), under ``<root>/<task>/runs/<id>`` or, for multirun jobs,
``<root>/<task>/multiruns/<sweep>/<job number>``. Its id is the one the run recorded
(multirun jobs are ``<sweep id>-<job number>``), else the directory's name.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from aegis.errors import AegisError

MARKERS = ("job.json", "summary.json", ".hydra")


class RunNotFound(AegisError):
    """No run, or more than one, matches what the user named."""


def default_root() -> Path:
    return Path(os.environ.get("AEGIS_OUTPUT_ROOT") or "outputs")


@dataclass(frozen=True)
class RunDir:
    path: Path
    run_id: str

    @property
    def modified(self) -> float:
        """The latest change to the run's own files: what "recent" means in ``aegis list``."""
        times = [p.stat().st_mtime for p in (self.path / m for m in MARKERS) if p.exists()]
        return max(times, default=self.path.stat().st_mtime)


def _recorded_id(path: Path) -> Optional[str]:
    for name in ("job.json", "summary.json"):
        try:
            value = json.loads((path / name).read_text()).get("run_id")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, str) and value:
            return value
    return None


def _is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / m).exists() for m in MARKERS)


def iter_runs(root: Path) -> Iterator[RunDir]:
    if not root.is_dir():
        return
    for task in sorted(p for p in root.iterdir() if p.is_dir()):
        for run in sorted((task / "runs").glob("*")) if (task / "runs").is_dir() else []:
            if _is_run_dir(run):
                yield RunDir(run, _recorded_id(run) or run.name)
        for sweep in sorted((task / "multiruns").glob("*")) if (task / "multiruns").is_dir() else []:
            for job in sorted(sweep.glob("*")):
                if _is_run_dir(job):
                    yield RunDir(job, _recorded_id(job) or f"{sweep.name}-{job.name}")


def find_run(name: str, root: Path) -> RunDir:
    """The one run ``name`` denotes: a run dir path, an exact run id, or a unique prefix."""
    as_path = Path(name)
    if ("/" in name or as_path.is_absolute()) and _is_run_dir(as_path):
        return RunDir(as_path.resolve(), _recorded_id(as_path) or as_path.name)
    runs = list(iter_runs(root))
    exact = [r for r in runs if r.run_id == name]
    if len(exact) == 1:
        return exact[0]
    matches = exact or [r for r in runs if r.run_id.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RunNotFound(f"no run {name!r} under {root}: expected a run id (see `python -m aegis list`), a unique "
                          "prefix of one, or a run dir; --root DIR (or AEGIS_OUTPUT_ROOT) sets where runs live.")
    ids = sorted(r.run_id for r in matches)
    shown = ", ".join(ids[:SHOWN_MATCHES]) + (f" and {len(ids) - SHOWN_MATCHES} more" if len(ids) > SHOWN_MATCHES else "")
    raise RunNotFound(f"{name!r} matches {len(matches)} runs under {root} ({shown}): give more of the run id.")


SHOWN_MATCHES = 5  # an ambiguous prefix names this many of its matches, then how many more
