"""Upper bounds on sizes and counts, and fixed list lengths, in one table.

The schemas' checks say what a value may be at the low end (``>= 1``); nothing stopped the
high end, so ``trainer.max_epochs=99999999999999999999`` trained until killed,
``launcher.nodes=100000`` asked a cluster for a gang it can never place, and
``data.batch_size=100000000`` ended in an out-of-memory kill long after the run dir was
made. Each bound here is far above anything a real run asks for (a typo or a runaway
script, not a big job, crosses it) and the sentence says the bound, so a user who really
needs more knows which number to question. Kept in one module so the bounds read as one
policy, except a launcher's own keys: those are its ``Launcher.bounds`` (values from the
shared ``aegis.launch.base.MOST_*``), asked of the selected launcher, so a launcher's key is
named only in its folder; checked only for keys the composed config has. Lengths: a list whose length the code assumes
(``data.image_size`` is [height, width]) is refused here rather than as an ``IndexError``
in the decoder.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Optional

from omegaconf import DictConfig, ListConfig, OmegaConf

from aegis.errors import Problems

# key -> (most allowed, what it counts). Whole numbers.
MOST = {
    "trainer.max_epochs": (100_000, "epochs"),
    "trainer.min_epochs": (100_000, "epochs"),
    "trainer.accumulate_grad_batches": (100_000, "batches"),
    "trainer.log_every_n_steps": (10_000_000, "steps"),
    "data.batch_size": (1_048_576, "samples per batch"),
    "data.num_workers": (256, "DataLoader worker processes"),
    "data.num_samples": (100_000_000, "samples"),
    "data.num_features": (1_000_000, "features"),
    "model.hidden_dim": (65_536, "units"),
    "strategy.devices": (64, "devices per node"),
    "strategy.num_nodes": (10_000, "nodes"),
    "strategy.timeout_s": (86_400, "seconds (a day)"),
    "checkpoint.every_n_steps": (100_000_000, "steps"),
    # A launcher's own keys: its ``Launcher.bounds`` (``launcher.nproc_per_node`` is torchrun's).
}

# Each item of these lists: (most allowed, what it counts).
MOST_EACH = {
    "model.hidden_dims": (65_536, "units"),
    "model.channels": (65_536, "channels"),
    "data.input_shape": (1_000_000, "values per dimension"),
    "data.image_size": (16_384, "pixels"),
}

# key -> (length, what the items are).
LENGTH = {
    "data.image_size": (2, "[height, width], e.g. [32,32]"),
}

# Kubernetes quantities: key -> (least, exclusive?, most, what, shown bound).
CPU = (Decimal(0), Decimal(1024), "1024 CPUs")
MEMORY = (Decimal(0), Decimal(64 * 2**40), "64Ti")
QUANTITIES = {
    "launcher.resources.cpu": CPU, "launcher.resources.cpu_limit": CPU,
    "launcher.head.resources.cpu": CPU, "launcher.head.resources.cpu_limit": CPU,
    "launcher.resources.memory": MEMORY, "launcher.resources.memory_limit": MEMORY,
    "launcher.head.resources.memory": MEMORY, "launcher.head.resources.memory_limit": MEMORY,
    "launcher.resources.ephemeral_storage": (Decimal(0), Decimal(2**50), "1Pi"),
    "launcher.shm_size": (Decimal(0), Decimal(64 * 2**40), "64Ti"),
}

_ABSENT = object()


def _value(cfg: DictConfig, key: str) -> Any:
    try:
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
    except Exception:  # unreadable: another check says why
        return _ABSENT
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


_REFERENCE = re.compile(r"\$\{\s*([A-Za-z_][\w.]*)\s*\}")


def _follows_refused(cfg: DictConfig, key: str, found: Problems) -> bool:
    """``key`` is interpolated from a key already refused (``data.input_shape`` is
    ``[${data.num_features}]``): its own sentence would repeat that one."""
    parent, _, name = key.rpartition(".")
    try:
        node = OmegaConf.select(cfg, parent) if parent else cfg
        raw = OmegaConf.to_container(node, resolve=False).get(name) if isinstance(node, DictConfig) else None
    except Exception:
        return False
    items = raw if isinstance(raw, list) else [raw]
    sources = [ref for item in items if isinstance(item, str) for ref in _REFERENCE.findall(item)]
    return bool(sources) and found.refused(*sources)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(str(x) for x in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)


def _quantity(value: Any) -> Optional[Decimal]:
    from aegis.core.quantities import parse

    return parse(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None


def _launcher_bounds(cfg: DictConfig) -> dict[str, tuple[int, str]]:
    """The selected launcher's bounds on its own keys (``Launcher.bounds``), as ``launcher.<key>``."""
    from aegis.config import where

    try:
        own = getattr(where.launcher(cfg), "bounds", {})
    except Exception:  # no launcher.name, or an unknown one: another check says why
        return {}
    return {f"launcher.{key}": bound for key, bound in own.items()}


def check(cfg: DictConfig, found: Problems) -> None:
    """Every value above its bound, every fixed-length list of another length: one sentence each."""
    for key, (most, what) in {**MOST, **_launcher_bounds(cfg)}.items():
        if found.covers(key):
            continue
        value = _value(cfg, key)
        if _whole(value) and value > most:
            found.add(f"{key}={value} is more than Aegis accepts: expected at most {most} {what}.", key)
    for key, (most, what) in MOST_EACH.items():
        if found.covers(key) or _follows_refused(cfg, key, found):
            continue
        value = _value(cfg, key)
        if isinstance(value, list) and any(_whole(v) and v > most for v in value):
            found.add(f"{key}={_shown(value)} is more than Aegis accepts: expected at most {most} {what} "
                      "in each item.", key)
    for key, (length, what) in LENGTH.items():
        if found.covers(key) or _follows_refused(cfg, key, found):
            continue
        value = _value(cfg, key)
        if isinstance(value, list) and len(value) != length:
            found.add(f"{key}={_shown(value)} has {len(value)} item{'s' if len(value) != 1 else ''}: expected "
                      f"{length}, {what}.", key)
    for key, (least, most, shown) in QUANTITIES.items():
        if found.covers(key):
            continue
        value = _value(cfg, key)
        amount = _quantity(value) if value is not _ABSENT and value is not None else None
        if amount is None:
            continue  # unset, or not a quantity (aegis.k8s.checks says so)
        if amount <= least:
            found.add(f"{key}={_shown(value)} asks for nothing: expected more than 0 (or null for no request).", key)
        elif amount > most:
            found.add(f"{key}={_shown(value)} is more than Aegis accepts: expected at most {shown}.", key)
