"""Decode ``class_name/*.png|jpg`` images (a folder, .tar, .tar.gz or .zip) into arrays.

The class of an image is the name of the folder it sits in, so ``digits/3/a.png`` and
``3/a.png`` both mean class ``3``; classes are sorted by name, labels are their indices.
Pixels are kept as uint8 ``(N, C, H, W)`` (a quarter of float32 on disk, mapped as is);
the data module scales them to [0, 1] when it loads them.
"""

from __future__ import annotations

import io
import tarfile
import warnings
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Iterator, Optional

import numpy as np

from aegis.data import bounds
from aegis.data.errors import DataSourceError
from aegis.data.spec import DatasetSpec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F", "P")


def _wanted(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return (name.lower().endswith(IMAGE_SUFFIXES) and not any(p.startswith(".") for p in parts)
            and "__MACOSX" not in parts)


def members(path: Path, spec: DatasetSpec) -> Iterator[tuple[str, bytes]]:
    """(relative posix name, bytes) of every image file, in name order.

    Sizes are bounded (``aegis.data.bounds``) from the members' headers before any is read,
    the total against ``data.max_bytes`` and each image against ``MAX_IMAGE_BYTES``, and
    each read stops at its bound, so a header that lies does not help either."""
    each = min(bounds.MAX_IMAGE_BYTES, spec.max_bytes)
    if path.is_dir():
        for file in sorted(path.rglob("*")):
            name = file.relative_to(path).as_posix()
            if file.is_file() and _wanted(name):
                bounds.check(spec, f"holds {name}, a file of", file.stat().st_size, each)
                with open(file, "rb") as handle:
                    yield name, bounds.read_bounded(handle, spec, f"holds {name}, a file of", each)
        return
    if tarfile.is_tarfile(path):
        with tarfile.open(path, "r:*") as archive:
            infos = sorted((m for m in archive.getmembers() if m.isfile() and _wanted(m.name)), key=lambda m: m.name)
            bounds.check(spec, "holds images of", sum(m.size for m in infos))
            for info in infos:
                bounds.check(spec, f"holds {info.name}, a member of", info.size, each)
            for info in infos:
                handle = archive.extractfile(info)
                if handle is not None:
                    yield info.name.lstrip("./"), bounds.read_bounded(handle, spec, f"holds {info.name}, a member of",
                                                                      each)
        return
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            infos = sorted((i for i in archive.infolist() if not i.is_dir() and _wanted(i.filename)),
                           key=lambda i: i.filename)
            bounds.check(spec, "holds images of", sum(i.file_size for i in infos))
            for info in infos:
                bounds.check(spec, f"holds {info.filename}, a member of", info.file_size, each)
            for info in infos:
                with archive.open(info) as handle:
                    yield info.filename, bounds.read_bounded(handle, spec, f"holds {info.filename}, a member of",
                                                             each)
        return
    raise DataSourceError(
        f"data.source={spec.shown_source} is neither a folder nor a .tar, .tar.gz or .zip archive: "
        "expected class_name/*.png|jpg images in one of those.")


def _too_many_pixels(spec: DatasetSpec, name: str, size: str) -> DataSourceError:
    return DataSourceError(
        f"data.source={spec.shown_source} holds {name}, an image of {size}, more than the "
        f"{bounds.MAX_IMAGE_PIXELS} pixels an image may have: expected images of a trainable size (resize them "
        "before packing).")


def _no_class_folders(spec: DatasetSpec, why: str) -> DataSourceError:
    return DataSourceError(
        f"data.source={spec.shown_source} {why}: expected class folders of images, class_name/*.png|jpg "
        "(e.g. cat/1.png, dog/2.jpg), in a folder, .tar, .tar.gz or .zip.")


def decode(path: Path, spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(uint8 images N×C×H×W, int64 labels, facts for meta.json)."""
    from PIL import Image, UnidentifiedImageError

    channels: Optional[int] = spec.options.get("channels")
    size = spec.options.get("image_size")
    images, names, loose = [], [], []
    decoded = 0  # bytes of the pixels held so far
    for name, data in members(path, spec):
        parts = PurePosixPath(name).parts
        if len(parts) < 2:
            loose.append(name)
            continue
        try:
            with warnings.catch_warnings():  # Pillow's bomb warning: refused below in one sentence instead
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(io.BytesIO(data))  # reads the header only
            pixels = image.size[0] * image.size[1]
            if pixels > bounds.MAX_IMAGE_PIXELS:  # before Pillow allocates them
                raise _too_many_pixels(spec, name, f"{image.size[0]}x{image.size[1]} pixels")
            decoded += pixels * len(image.getbands())
            bounds.check(spec, "decodes to more than", decoded)
            image.load()
        except Image.DecompressionBombError as exc:  # Pillow's own check, in Image.open
            raise _too_many_pixels(spec, name, str(exc).split("(")[1].split(")")[0] if "(" in str(exc) else "too many "
                                   "pixels") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise DataSourceError(
                f"data.source={spec.shown_source} holds {name}, which is not a readable image ({exc}): expected "
                "PNG or JPEG files only (or remove it).") from None
        images.append(image)
        names.append(parts[-2])
    if not images:
        why = f"holds images only at its top level ({loose[0]}, ...)" if loose else "holds no images"
        raise _no_class_folders(spec, why)
    classes = sorted(set(names))
    if len(classes) < 2:
        raise _no_class_folders(spec, f"holds one class folder only ({classes[0]})")
    if channels is None:
        channels = 1 if all(im.mode in GRAY_MODES for im in images) else 3
    mode = "L" if channels == 1 else "RGB"
    if size is None:
        sizes = {im.size for im in images}
        if len(sizes) > 1:
            (w1, h1), (w2, h2) = sorted(sizes)[:2]
            raise DataSourceError(
                f"data.source={spec.shown_source} holds images of different sizes ({h1}x{w1} and {h2}x{w2}, "
                f"height x width): expected data.image_size=[height,width] to resize them to one size.")
        width, height = images[0].size
    else:
        height, width = int(size[0]), int(size[1])
    bounds.check(spec, "decodes to", len(images) * channels * height * width)
    out = np.empty((len(images), channels, height, width), dtype=np.uint8)
    for i, image in enumerate(images):
        image = image.convert(mode)
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.uint8)
        out[i] = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
    index = {name: i for i, name in enumerate(classes)}
    labels = np.fromiter((index[n] for n in names), dtype=np.int64, count=len(names))
    return out, labels, {"classes": classes, "input_shape": [channels, height, width], "scale": 255.0}
