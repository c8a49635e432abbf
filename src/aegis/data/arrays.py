"""Decode feature/label arrays: an ``.npz`` (two named arrays) or a Parquet table.

An ``.npz`` holds ``data.features_key`` (N × ...) and ``data.labels_key`` (N). A Parquet
table holds the label column ``data.labels_key`` and features in every other column (or
in ``data.features_key``, one column of equal-length lists); reading it needs pyarrow.
Labels of any type become class indices 0..K-1 in sorted order of their values.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from aegis.data import bounds
from aegis.data.errors import DataSourceError
from aegis.data.spec import DatasetSpec

PARQUET_MAGIC = b"PAR1"


def _key_error(spec: DatasetSpec, key: str, value: str, available: list[str]) -> DataSourceError:
    return DataSourceError(
        f"data.{key}={value} is not in data.source={spec.shown_source}: expected one of "
        f"{', '.join(available) or '(nothing: the file is empty)'}.")


def _npz(path: Path, spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray]:
    features_key = spec.options.get("features_key") or "features"
    labels_key = spec.options.get("labels_key") or "labels"
    with zipfile.ZipFile(path) as members:  # the sizes the arrays inflate to, from the zip's headers
        bounds.check(spec, "holds arrays of", sum(i.file_size for i in members.infolist()))
    with np.load(path, allow_pickle=False) as archive:
        available = list(archive.files)
        for key, value in (("features_key", features_key), ("labels_key", labels_key)):
            if value not in available:
                raise _key_error(spec, key, value, available)
        loaded = []
        for key, value in (("features_key", features_key), ("labels_key", labels_key)):
            try:
                loaded.append(np.asarray(archive[value]))
            except ValueError as exc:  # object arrays (pickles) and malformed headers
                why = ("holds Python objects, which are never unpickled from a source" if "allow_pickle" in str(exc)
                       else f"cannot be read ({str(exc).rstrip('.')})")
                raise DataSourceError(
                    f"data.{key}={value} of data.source={spec.shown_source} {why}: expected an array of "
                    "numbers (np.savez with numeric arrays).") from None
        return loaded[0], loaded[1]


def _parquet(path: Path, spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataSourceError(
            f"data.source={spec.shown_source} is a Parquet file, which needs pyarrow: expected "
            "pip install pyarrow in this environment (and the image), or an .npz source.") from None
    table = pq.read_table(path)
    columns = list(table.column_names)
    labels_key = spec.options.get("labels_key") or "labels"
    if labels_key not in columns:
        raise _key_error(spec, "labels_key", labels_key, columns)
    labels = table.column(labels_key).to_numpy(zero_copy_only=False)
    features_key = spec.options.get("features_key") or "features"
    if features_key in columns:
        rows = table.column(features_key).to_pylist()
        features = np.asarray(rows, dtype=np.float32)
    else:
        rest = [c for c in columns if c != labels_key]
        if not rest:
            raise _key_error(spec, "features_key", features_key, columns)
        features = np.stack([table.column(c).to_numpy(zero_copy_only=False).astype(np.float32) for c in rest], axis=1)
    return features, labels


def decode(path: Path, spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(float32 features, int64 labels, facts for meta.json)."""
    if path.is_dir():
        raise DataSourceError(
            f"data.source={spec.shown_source} is a folder: expected one .npz or .parquet file.")
    with open(path, "rb") as handle:
        head = handle.read(4)
    try:
        if zipfile.is_zipfile(path):
            features, labels = _npz(path, spec)
        elif head == PARQUET_MAGIC:
            features, labels = _parquet(path, spec)
        else:
            raise DataSourceError(
                f"data.source={spec.shown_source} is neither an .npz nor a Parquet file: expected one of those.")
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:  # a damaged file: one sentence
        reason = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else type(exc).__name__
        raise DataSourceError(
            f"data.source={spec.shown_source} cannot be decoded ({reason[:200]}): expected a whole .npz or Parquet "
            "file.") from None
    if features.ndim < 2 or len(features) != len(labels) or labels.ndim != 1:
        raise DataSourceError(
            f"data.source={spec.shown_source} holds features of shape {list(features.shape)} and labels of shape "
            f"{list(labels.shape)}: expected N samples of features (N × ...) and N labels (one dimension).")
    values, labels = np.unique(labels, return_inverse=True)
    if len(values) < 2:
        raise DataSourceError(
            f"data.source={spec.shown_source} has one label value only ({values[0]}): expected at least 2 classes.")
    bounds.check(spec, "decodes to", int(features.size) * 4)  # float32
    try:
        features = features.astype(np.float32)
    except (TypeError, ValueError):
        raise DataSourceError(
            f"data.source={spec.shown_source} holds features of type {features.dtype}: expected numbers.") from None
    classes = [str(v) for v in values.tolist()]
    return features, labels.astype(np.int64), {"classes": classes, "input_shape": list(features.shape[1:]),
                                               "scale": 1.0}
