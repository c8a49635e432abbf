"""A run_id that already holds a run: the same config resumes it, another is refused.

Resuming is the default (``resume=auto``: a rerun of ``run_id=exp`` continues from its
``last.ckpt``), which is what a rerun after a crash or ``kill -9`` wants. But a second run
with the same run_id and a *different* config silently resumed the first: its weights,
its epoch count, its MLflow run and params, under a config that no longer describes them.
This check compares the config about to run with the one the run dir recorded
(``.hydra/config.yaml``, as composed, interpolations unresolved) before anything is
written, and refuses a difference in one sentence naming the keys, unless ``resume=auto``
was given on the command line (continue anyway) or ``resume`` is not ``auto``.

Keys that may change between attempts of one run are not compared: where and how it runs
(``launcher.*``, ``strategy.*``, ``trainer.accelerator``, ``hydra.*``: a checkpoint resumes on
another gang or device), how long it trains (``trainer.max_epochs``,
``trainer.max_time``: continuing a run for longer is the usual reason to resume it), how
it reports (``progress``, ``tags``, ``logger.*``: a model registered or not, another tracking
store; none of it changes what the weights mean), its checkpoint
schedule, DataLoader workers, paths (the run dir is the same one) and ``fault.*`` (a
failure injected into the first attempt, not the next).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Optional

from omegaconf import DictConfig, OmegaConf

from aegis.errors import Problems

IGNORED = ("launcher", "strategy", "trainer.accelerator", "hydra", "trainer.max_epochs", "trainer.max_time", "trainer.enable_model_summary",
           "progress", "tags", "logger", "checkpoint.every_n_steps",
           "checkpoint.every_minutes", "data.num_workers", "paths", "fault", "resume")
# What shows a run dir holds a run that started training (not only a dry run's manifest).
RAN = ("summary.json", "checkpoints")
SHOWN = 5


def _ignored(key: str) -> bool:
    return any(key == top or key.startswith((top + ".", top + "[")) for top in IGNORED)


def _flat(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        if not value and prefix:
            yield prefix, {}
        for name, child in value.items():
            yield from _flat(child, f"{prefix}.{name}" if prefix else str(name))
    else:
        yield prefix, value


def _plain(cfg: DictConfig) -> dict:
    container = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
    container.pop("hydra", None)
    return container


def differences(recorded: dict, current: dict) -> list[tuple[str, Any, Any]]:
    """(key, recorded value, current value) of each compared key that differs."""
    old, new = dict(_flat(recorded)), dict(_flat(current))
    keys = sorted(set(old) | set(new))
    missing = object()
    found = []
    for key in keys:
        if _ignored(key):
            continue
        before, after = old.get(key, missing), new.get(key, missing)
        if before != after:
            found.append((key, None if before is missing else before, None if after is missing else after))
    return found


def _in_a_gang_or_pod() -> bool:
    """A rank or a pod composes the config its launcher already checked (and recorded)."""
    from aegis.config import host

    return host.in_torchrun_gang() or host.in_slurm_gang() or "KUBERNETES_SERVICE_HOST" in os.environ


def _explicit_resume(hydra: Any) -> bool:
    try:
        task = list(hydra.overrides.task)
    except Exception:
        return False
    return any(line.lstrip("+") in ("resume=auto", "resume='auto'", 'resume="auto"') for line in task)


def _shown(value: Any) -> str:
    return "unset" if value is None else repr(value) if isinstance(value, str) else str(value)


def check(cfg: DictConfig, hydra: Any, found: Problems) -> None:
    if hydra is None or cfg.get("resume") != "auto" or _in_a_gang_or_pod():
        return
    if str(getattr(hydra.get("mode"), "name", hydra.get("mode")) or "RUN") == "MULTIRUN":
        return
    if _explicit_resume(hydra) or found.refused("run_id", "hydra.run.dir", "resume"):
        return
    try:
        run_dir = Path(str(hydra.run.dir))
    except Exception:
        return
    recorded_path = run_dir / ".hydra" / "config.yaml"
    if not recorded_path.is_file() or not any((run_dir / name).exists() for name in RAN):
        return
    recorded = recorded_config(run_dir)
    if recorded is None:
        return  # unreadable record: the run's own recovery deals with it
    diffs = differences(recorded, _plain(cfg))
    if not diffs:
        return
    listed = ", ".join(f"{key} ({_shown(before)} there, {_shown(after)} now)" for key, before, after in diffs[:SHOWN])
    more = f" and {len(diffs) - SHOWN} more" if len(diffs) > SHOWN else ""
    found.add(
        f"run_id={cfg.get('run_id')} already holds a run ({run_dir}) whose config differs in {listed}{more}: "
        "expected the same config to resume it, resume=auto on the command line to continue it with this "
        "config anyway, or a new run_id for a new run.", "run_id"
    )


def recorded_config(run_dir: Path) -> Optional[dict]:
    """The config a run dir recorded (``.hydra/config.yaml``, as composed), or None."""
    path = run_dir / ".hydra" / "config.yaml"
    try:
        value = OmegaConf.to_container(OmegaConf.load(path), resolve=False, enum_to_str=True)
    except Exception:
        return None
    return value if isinstance(value, dict) else None
