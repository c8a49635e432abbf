"""Data modules whose data comes from a source URI through the dataset cache.

``data=image_folder`` and ``data=arrays`` fetch ``data.source`` once into
``paths.dataset_cache`` (``aegis.data``: a per-entry lock, so every rank, trial and pod
that shares the cache downloads it at most once between them) and then load the cached,
memory-mapped arrays. They are ``ArrayDataModule``s: the same seeded stratified splits and
the same in-memory batch path as the built-in data.

Facts that only the data knows (classes, image shape) are filled into the config by
``complete_from_data`` before the model is built, so a model's ``${data.num_classes}``
and ``${data.input_shape}`` follow the data when the config leaves them null.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Optional, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

from aegis.data import DataSourceError, DatasetSpec, Entry, prepare
from aegis.data.caching import load as load_entry
from aegis.data.spec import spec_from_config
from aegis.training.data import ArrayDataModule

log = logging.getLogger("aegis.training")


class CachedDataModule(ArrayDataModule):
    """A data module over one cache entry; subclasses name their ``KIND`` and decode options."""

    KIND = ""  # a key of aegis.data.spec.KIND_OPTIONS: which decoder, which options

    def __init__(self, *, source: str, sha256: Optional[str], storage_options: Optional[dict], cache_dir: str,
                 batch_size: int, val_fraction: float, test_fraction: float, num_workers: int, split_seed: int,
                 num_classes: Optional[int], input_shape: Optional[Sequence[int]], name: Optional[str],
                 uses_dataset_cache: bool, max_bytes: int = 20_000_000_000, **options: Any) -> None:
        super().__init__(batch_size=batch_size, val_fraction=val_fraction, test_fraction=test_fraction,
                         num_workers=num_workers, split_seed=split_seed, num_classes=num_classes or 0,
                         input_shape=input_shape or (), name=name, uses_dataset_cache=uses_dataset_cache)
        self.spec = spec_from_config({"source": source, "sha256": sha256, "storage_options": storage_options,
                                      "max_bytes": max_bytes, **options}, self.KIND)
        self.cache_dir = cache_dir
        self.classes: list[str] = []

    @classmethod
    def spec_of(cls, data: DictConfig) -> DatasetSpec:
        return spec_from_config(OmegaConf.to_container(data, resolve=True), cls.KIND)

    def described(self) -> str:
        return f"data.source={self.spec.shown_source}"

    def entry(self) -> Entry:
        return prepare(self.spec, self.cache_dir)

    def prepare_data(self) -> None:
        self.entry()  # the lock makes it safe (and once) from every rank, not only local rank 0

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        entry = self.entry()
        started = time.perf_counter()
        features, labels = load_entry(entry)
        scale = float(entry.meta.get("scale") or 1.0)
        out = np.asarray(features, dtype=np.float32)
        if scale != 1.0:
            out = out * np.float32(1.0 / scale)
        labels = np.asarray(labels)
        seconds = time.perf_counter() - started
        log.info("Loaded %d samples of %s from the dataset cache in %.3f s (%.0f samples/s).", len(labels),
                 entry.name, seconds, len(labels) / max(seconds, 1e-9))
        expected = list(self.input_shape)
        if expected and expected != list(entry.meta["input_shape"]) and int(np.prod(expected)) != int(
                np.prod(entry.meta["input_shape"])):
            raise DataSourceError(f"data.input_shape={expected} does not fit data.source={self.spec.shown_source}, "
                              f"whose samples have shape {entry.meta['input_shape']}: expected data.input_shape=null "
                              "(from the data).")
        if not expected:
            self.input_shape = tuple(entry.meta["input_shape"])
        self.classes = list(entry.meta["classes"])
        return out, labels


class ImageFolderDataModule(CachedDataModule):
    """Images in class folders (``class_name/*.png|jpg``), decoded once, scaled to [0, 1]."""

    KIND = "image_folder"

    def __init__(self, source: str, sha256: Optional[str] = None, storage_options: Optional[dict] = None,
                 cache_dir: str = "outputs/dataset-cache", channels: Optional[int] = None,
                 image_size: Optional[Sequence[int]] = None, batch_size: int = 64, val_fraction: float = 0.1,
                 test_fraction: float = 0.2, num_workers: int = 0, split_seed: int = 1234,
                 num_classes: Optional[int] = None, input_shape: Optional[Sequence[int]] = None,
                 name: Optional[str] = None, uses_dataset_cache: bool = True, max_bytes: int = 20_000_000_000) -> None:
        super().__init__(source=source, sha256=sha256, storage_options=storage_options, cache_dir=cache_dir,
                         max_bytes=max_bytes,
                         batch_size=batch_size, val_fraction=val_fraction, test_fraction=test_fraction,
                         num_workers=num_workers, split_seed=split_seed, num_classes=num_classes,
                         input_shape=input_shape, name=name, uses_dataset_cache=uses_dataset_cache,
                         channels=channels, image_size=list(image_size) if image_size else None)


class ArraysDataModule(CachedDataModule):
    """Feature/label arrays from an .npz or a Parquet table, decoded once."""

    KIND = "arrays"

    def __init__(self, source: str, sha256: Optional[str] = None, storage_options: Optional[dict] = None,
                 cache_dir: str = "outputs/dataset-cache", features_key: str = "features", labels_key: str = "labels",
                 batch_size: int = 64, val_fraction: float = 0.1, test_fraction: float = 0.2, num_workers: int = 0,
                 split_seed: int = 1234, num_classes: Optional[int] = None,
                 input_shape: Optional[Sequence[int]] = None, name: Optional[str] = None,
                 uses_dataset_cache: bool = True, max_bytes: int = 20_000_000_000) -> None:
        super().__init__(source=source, sha256=sha256, storage_options=storage_options, cache_dir=cache_dir,
                         max_bytes=max_bytes,
                         batch_size=batch_size, val_fraction=val_fraction, test_fraction=test_fraction,
                         num_workers=num_workers, split_seed=split_seed, num_classes=num_classes,
                         input_shape=input_shape, name=name, uses_dataset_cache=uses_dataset_cache,
                         features_key=features_key, labels_key=labels_key)


def complete_from_data(cfg: DictConfig) -> Optional[Entry]:
    """Cache the data (once) and fill ``data.num_classes``/``data.input_shape`` left null,
    so the model built next, and the config and params recorded, see the data's values.

    A value the config sets is checked against the data instead: one sentence when the
    data has another number of classes."""
    from hydra.utils import get_class

    target = cfg.data.get("_target_")
    try:
        cls = get_class(target) if target else None
    except Exception:
        return None
    if cls is None or not issubclass(cls, CachedDataModule):
        return None
    entry = prepare(cls.spec_of(cfg.data), cfg.data.cache_dir)
    facts = {"num_classes": int(entry.meta["num_classes"]), "input_shape": list(entry.meta["input_shape"])}
    given = cfg.data.get("num_classes")
    if given is not None and given != facts["num_classes"]:
        raise DataSourceError(f"data.num_classes={given} does not match data.source={cls.spec_of(cfg.data).shown_source}, "
                          f"which has {facts['num_classes']} classes: expected data.num_classes=null (from the data) "
                          f"or {facts['num_classes']}.")
    read_only = OmegaConf.is_readonly(cfg)
    OmegaConf.set_readonly(cfg, False)
    try:
        with open_dict(cfg):
            for key, value in facts.items():
                if cfg.data.get(key) is None:
                    cfg.data[key] = value
    finally:
        OmegaConf.set_readonly(cfg, read_only)
    return entry
