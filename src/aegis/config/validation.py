"""Validate a composed config before anything is created or submitted.

Hydra already rejects unknown keys and wrong types while composing (the schemas are
closed). This module adds what types cannot say: ranges and choices carried by schema
fields (``aegis.config.checks``) and rules that span groups. Every failure is one
``ConfigError`` sentence naming the full key and what would be valid.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from aegis.config.schema import TrainConfig
from aegis.config.signature import HYDRA_KEYS, static_signature
from aegis.errors import ConfigError

RESUME_KEYWORDS = ("auto", "never")


def _get(node: DictConfig, name: str, key: str) -> Any:
    try:
        return node[name]
    except OmegaConfBaseException as exc:
        reason = str(exc).splitlines()[0]
        raise ConfigError(f"{key} could not be resolved: {reason}.") from None


def _plain(value: Any) -> Any:
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    if hasattr(value, "value") and hasattr(value, "name"):  # an Enum member
        return value.value
    return value


def _check_node(node: DictConfig, schema: type, prefix: str) -> None:
    for f in dataclasses.fields(schema):
        if f.name not in node:
            continue
        key = f"{prefix}{f.name}"
        value = _get(node, f.name, key)
        if isinstance(value, DictConfig):
            _check_tree(value, f"{key}.")
            continue
        check = f.metadata.get("check")
        if check is None or value is None:
            continue
        plain = _plain(value)
        if not check(plain):
            shown = OmegaConf.to_yaml(plain).strip() if isinstance(plain, (list, dict)) else repr(plain)
            raise ConfigError(f"{key}={shown} is invalid: expected {check.expected}.")


def _check_tree(node: DictConfig, prefix: str) -> None:
    schema = OmegaConf.get_type(node)
    if schema is not None and dataclasses.is_dataclass(schema):
        _check_node(node, schema, prefix)


def _cross_checks(cfg: DictConfig) -> None:
    data, model, launcher, strategy = cfg.data, cfg.model, cfg.launcher, cfg.strategy

    val, test = data.get("val_fraction"), data.get("test_fraction")
    if isinstance(val, (int, float)) and isinstance(test, (int, float)) and val + test >= 1:
        raise ConfigError(
            f"data.val_fraction + data.test_fraction = {val + test:g} leaves no training data: "
            "their sum must be below 1."
        )

    if model.get("name") == "cnn" and len(model.get("input_shape") or []) != 3:
        raise ConfigError(
            f"model=cnn needs image data with data.input_shape [channels, height, width], "
            f"but data={data.get('name')} gives {list(model.input_shape)}: use model=mlp or image data."
        )

    if launcher.name == "torchrun":
        if launcher.node_rank >= launcher.nnodes:
            raise ConfigError(
                f"launcher.node_rank={launcher.node_rank} is invalid: expected 0 <= node_rank < "
                f"launcher.nnodes ({launcher.nnodes})."
            )
        if launcher.nnodes > 1 and launcher.master_port is None:
            raise ConfigError(
                "launcher.master_port must be set when launcher.nnodes > 1: every node has to "
                "reach the same launcher.master_addr:master_port."
            )
        world = launcher.nproc_per_node * launcher.nnodes
        if world > 1 and strategy.name != "ddp":
            raise ConfigError(
                f"launcher=torchrun starts {world} processes but strategy={strategy.name} trains in "
                "one: add strategy=ddp."
            )

    resume = cfg.resume
    if resume not in RESUME_KEYWORDS and launcher.name in ("local", "torchrun"):
        if not os.path.isfile(resume):
            raise ConfigError(
                f"resume={resume} is not a checkpoint file: expected 'auto' (continue from "
                "last.ckpt in the run dir), 'never', or the path of an existing .ckpt file."
            )


def _check_arguments(cfg: DictConfig) -> None:
    """Keys of ``data``/``model`` against their class's ``__init__``, read from source."""
    for key in ("data", "model"):
        node = cfg[key]
        target = node.get("_target_")
        signature = static_signature(target) if target else None
        if signature is None:
            continue
        given = [k for k in node.keys() if k not in HYDRA_KEYS]
        unknown = [k for k in given if k not in signature.parameters]
        if unknown:
            raise ConfigError(
                f"{key}.{unknown[0]} is not an argument of {target}: it accepts "
                f"{', '.join(signature.parameters)}."
            )
        missing = [p for p in signature.required if p not in given]
        if missing:
            raise ConfigError(f"{key}.{missing[0]} is required by {target} but not set.")


def validate(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` for the first problem found in a composed config."""
    _check_node(cfg, TrainConfig, "")
    _check_arguments(cfg)
    _cross_checks(cfg)
    if cfg.launcher.name in ("k8s-job", "pytorchjob"):
        from aegis.k8s.checks import check_config  # Kubernetes rules, only when asked for

        check_config(cfg)


class ValidateOnStart(Callback):
    """Hydra callback: validate before Hydra creates the run (or sweep) directory.

    Hydra turns exceptions raised in callbacks into warnings and carries on, so a
    failure here prints its one sentence and exits 1 itself.
    """

    def _validate(self, config: DictConfig) -> None:
        HydraConfig.instance().set_config(config)  # lets ${hydra:...} resolve here
        try:
            validate(config)
            from aegis.launch.slurm import check as check_slurm  # hydra/launcher=submitit_slurm rules

            check_slurm(config)
        except ConfigError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            sys.exit(1)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._validate(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._validate(config)
