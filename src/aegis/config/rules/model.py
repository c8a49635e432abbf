"""The model against its data and its metrics: shapes and classes that match, monitors it logs.

``model.input_shape``/``num_classes`` follow the data by interpolation; one set by hand
that disagrees, a CNN on flat data, or a checkpoint (or callback) watching a metric the
model never logs would each fail inside Lightning after the run dir exists.
"""

from __future__ import annotations

from omegaconf import DictConfig

from aegis.config.metrics import not_logged
from aegis.config.rules.values import plain, shown
from aegis.errors import Problems


def check(cfg: DictConfig, found: Problems) -> None:
    """The model's input shape and classes match the data's, and a CNN gets image data."""
    data, model = cfg.data, cfg.model
    for key in ("input_shape", "num_classes"):
        if key in model and key in data and not found.refused(f"model.{key}", f"data.{key}"):
            given, expected = plain(model[key]), plain(data[key])
            if given != expected:
                found.add(
                    f"model.{key}={shown(given)} does not match data.{key}={shown(expected)} of "
                    f"data={data.get('name')}: expected model.{key} to follow the data (leave it as "
                    f"${{data.{key}}}, the default).", f"model.{key}"
                )
    if found.refused("model.input_shape", "data.input_shape"):
        return
    if data.get("input_shape", "") is None:
        return  # from the data, once it is cached: checked when the run starts (aegis.training.datasets)
    if model.get("name") == "cnn" and len(model.get("input_shape") or []) != 3:
        found.add(
            f"model=cnn needs image data with data.input_shape [channels, height, width], "
            f"but data={data.get('name')} gives {list(model.input_shape)}: expected model=mlp, or image data "
            "such as data=digits.", "model.input_shape"
        )


def check_monitor(cfg: DictConfig, found: Problems) -> None:
    """``checkpoint.monitor`` is a metric the model logs while fitting."""
    if not found.refused("checkpoint.monitor"):
        check_monitored(cfg, "checkpoint.monitor", cfg.checkpoint.monitor, found)


def check_monitored(cfg: DictConfig, key: str, monitor: str, found: Problems) -> None:
    """``key`` (a checkpoint's or callback's ``monitor``) must be a metric the model logs while fitting.

    Aegis's models declare what they log (``LOGGED_METRICS``); a user's model that
    declares nothing is not checked. ``test/*`` metrics exist only after fitting.
    """
    sentence = not_logged(cfg.model, key, monitor)
    if sentence is not None:
        found.add(sentence, key)
