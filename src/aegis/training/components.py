"""Build the config's components, checking their arguments first.

Like torchtune's config validation: bind the keys to the target's signature before
calling it, so a typo in a user's own ``model:`` option is one clear message naming the
key, not a traceback from deep inside ``__init__``.
"""

from __future__ import annotations

import inspect
from typing import Any, Optional

from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf

from aegis.config.signature import HYDRA_KEYS
from aegis.core import logger_kind
from aegis.errors import ConfigError


def check_signature(node: DictConfig, key: str) -> None:
    target_path = node.get("_target_")
    if not target_path:
        raise ConfigError(f"{key}._target_ is missing: set it to the import path of the class to build.")
    try:
        target = get_object(target_path)
    except Exception as exc:
        raise ConfigError(f"{key}._target_={target_path} cannot be imported: {exc}.") from None
    kwargs = {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k not in HYDRA_KEYS}
    signature = inspect.signature(target)
    try:
        signature.bind(**kwargs)
    except TypeError as exc:
        accepted = [p for p in signature.parameters if p not in ("self", "args", "kwargs")]
        raise ConfigError(
            f"{key} does not fit {target_path}: {exc}; it accepts {', '.join(accepted) or 'no arguments'}."
        ) from None


def _kinds() -> dict[str, type]:
    from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer
    from lightning.pytorch.loggers import Logger

    return {"data": LightningDataModule, "model": LightningModule, "trainer": Trainer, "callbacks": Callback,
            "logger": Logger}


def check_targets(cfg: DictConfig) -> None:
    """Import every ``_target_`` the run will instantiate (data, model, trainer, each callback,
    a logger given by class, and the ``_target_`` nodes nested in their arguments) and check that each is a class,
    of its group's kind for the top-level ones, before any of them is called.

    Validation reads the classes' source (aegis.config.targets); what source cannot say
    (``os.system``, a compiled module) is answered here, by importing without calling:
    ``+callbacks.x._target_=shutil.copyfile`` once copied a file before the "not a
    Lightning callback" check ran.
    """
    from aegis.config.targets import KINDS, nested
    from aegis.errors import ConfigErrors

    kinds = _kinds()
    nodes = [("data", cfg.data), ("model", cfg.model), ("trainer", cfg.trainer)]
    nodes += [(f"callbacks.{name}", node) for name, node in (cfg.get("callbacks") or {}).items() if node is not None]
    if logger_kind.of(cfg.get("logger")).target is not None:
        nodes.append(("logger", cfg.logger))
    sentences = []
    for key, node in nodes:
        if not isinstance(node, DictConfig):
            continue
        group = key.partition(".")[0]
        entries = [(key, node.get("_target_"), group)] + [(inner, target, None) for inner, target in nested(node, key)]
        for where, target_path, kind in entries:
            if not isinstance(target_path, str):
                continue
            try:
                target = get_object(target_path)
            except Exception as exc:
                sentences.append(f"{where}._target_={target_path} cannot be imported: {exc}.")
                continue
            if not inspect.isclass(target):
                sentences.append(f"{where}._target_={target_path} is a {type(target).__name__}, not a class: "
                                 "expected the import path of a class.")
            elif kind is not None and not issubclass(target, kinds[kind]):
                sentences.append(f"{where}._target_={target_path} is a class but not {KINDS[kind][1]}: expected "
                                 "the import path of one.")
    if sentences:
        raise ConfigErrors(sentences)


def build(node: DictConfig, key: str, **extra: Any) -> Any:
    """Check, then instantiate from plain values (enums as strings), so that what a
    module saves in its checkpoint hparams loads with ``weights_only=True``."""
    check_signature(node, key)
    plain = OmegaConf.create(OmegaConf.to_container(node, resolve=True, enum_to_str=True))
    return instantiate(plain, _convert_="all", **extra)


def build_callbacks(nodes: Optional[DictConfig]) -> list[Any]:
    """The ``callbacks`` group's Lightning callbacks, in the config's order.

    A ``null`` entry is an option switched off (``callbacks.early_stopping=null``). The
    trainer gets these after Aegis's own, which are not config and so cannot be dropped.
    """
    from lightning.pytorch import Callback

    built = []
    for name, node in (nodes or {}).items():
        if node is None:
            continue
        callback = build(node, f"callbacks.{name}")
        if not isinstance(callback, Callback):
            raise ConfigError(
                f"callbacks.{name}._target_={node.get('_target_')} builds a {type(callback).__name__}, not a "
                "Lightning callback: expected a subclass of lightning.pytorch.Callback."
            )
        built.append(callback)
    return built
