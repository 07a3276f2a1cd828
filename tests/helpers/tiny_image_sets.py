"""Tiny image datasets written in a test's tmp_path: CoOp folders and prepared TFDS sets.

Every image is random noise of its own size (so resizing and cropping matter), saved as
PNG (lossless: the decoded pixels are the written ones) or JPEG.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import struct
from typing import Any, Sequence

import numpy as np
from PIL import Image


def image_bytes(rng: np.random.Generator, width: int, height: int, fmt: str = "PNG",
                mode: str = "RGB") -> tuple[bytes, np.ndarray]:
  """An encoded random image and the pixels it holds (uint8 ``[h, w(, 3)]``)."""
  shape = (height, width, 3) if mode == "RGB" else (height, width)
  pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(pixels, mode=mode).save(buffer, format=fmt)
  return buffer.getvalue(), pixels


def write_image(path: pathlib.Path, rng: np.random.Generator, width: int, height: int) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
  path.write_bytes(image_bytes(rng, width, height, fmt)[0])


def write_split_json(folder: pathlib.Path, split_file: str, image_dir: str,
                     class_names: Sequence[str], counts: dict[str, Sequence[int]],
                     seed: int = 0, suffix: str = ".png") -> dict[str, list[list[Any]]]:
  """A dataset folder in CoOp's layout: ``counts[split][c]`` images of class ``c``.

  Images are ``<image_dir>/<class>/<split>_<i>.png``, of sizes drawn in 20..40 px.
  Returns the split file's content.
  """
  rng = np.random.default_rng(seed)
  split: dict[str, list[list[Any]]] = {}
  for key, per_class in counts.items():
    split[key] = []
    for label, n in enumerate(per_class):
      for i in range(n):
        rel = f"{class_names[label]}/{key}_{i}{suffix}"
        write_image(folder / image_dir / rel, rng, *rng.integers(20, 41, size=2))
        split[key].append([rel, label, class_names[label]])
  folder.mkdir(parents=True, exist_ok=True)
  (folder / split_file).write_text(json.dumps(split))
  return split


def tiny_tfds(data_dir: pathlib.Path, name: str, features: Any,
              splits: dict[str, list[dict[str, Any]]], config: str | None = None) -> str:
  """A prepared array_record TFDS dataset (records in the given order); its folder.

  Written through TFDS' own builder machinery, offline: the examples are given as
  encoded images and ints, so TensorFlow is not needed.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.core.dataset_builders import adhoc_builder  # pylint: disable=g-import-not-at-top

  class _Builder(adhoc_builder.AdhocBuilder, skip_registration=True):

    def _split_generators(self, dl_manager):
      del dl_manager
      return {k: iter(list(enumerate(v))) for k, v in self._split_datasets.items()}

  builder = _Builder(name=name, version="1.0.0", config=config, features=features,
                     split_datasets=splits, data_dir=os.fspath(data_dir),
                     file_format="array_record", disable_shuffling=True)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  return os.fspath(builder.data_dir)


_CRC_TABLE = []
for _n in range(256):
  _c = _n
  for _ in range(8):
    _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
  _CRC_TABLE.append(_c)


def masked_crc32c(data: bytes) -> int:
  """TFRecord's masked CRC-32C (Castagnoli) of ``data``."""
  crc = 0xFFFFFFFF
  for byte in data:
    crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
  crc ^= 0xFFFFFFFF
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def write_tfrecord(path: pathlib.Path, records: Sequence[bytes]) -> None:
  """A TFRecord file, framed as TensorFlow's writer frames it."""
  with open(path, "wb") as f:
    for data in records:
      length = struct.pack("<Q", len(data))
      f.write(length + struct.pack("<I", masked_crc32c(length)) + data
              + struct.pack("<I", masked_crc32c(data)))


def as_tfrecord(builder_dir: str) -> None:
  """Rewrites a prepared array_record TFDS dataset as tfrecord files (same records)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = tfds.builder_from_directory(builder_dir)
  for split, info in builder.info.splits.items():
    source = builder.as_data_source(split=split,
                                    deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)
    records = list(source.__getitems__(range(len(source))))
    for path in info.filepaths:
      os.remove(path)
    write_tfrecord(pathlib.Path(builder_dir) / f"{builder.name}-{split}.tfrecord-00000-of-00001",
                   records)
  info_path = pathlib.Path(builder_dir) / "dataset_info.json"
  info = json.loads(info_path.read_text())
  info["fileFormat"] = "tfrecord"
  info_path.write_text(json.dumps(info))
