"""JPEG/PNG decoding with CLIP's evaluation preprocessing: bicubic resize, centre crop.

CLIP (and CoOp/BlackVIP at test time) feed an image as ``Resize(size, bicubic)`` of the
shorter side, then ``CenterCrop(size)``. ``clip_resize_crop`` reproduces torchvision's
arithmetic on a PIL image: the shorter side becomes ``size`` and the longer one
``int(size * long / short)``; the crop starts at ``int(round((side - size) / 2))``
(Python's round, ties to even). Pixels stay uint8 (what PIL's resize gives, and what
the image family's datasets hold); ``to_unit_float`` gives CLIP's float32 [0, 1] input
before its normalisation, which the black box applies itself.

One difference from CLIP: the image is converted to RGB *before* resizing. CLIP
converts after cropping, which for palette ('P') and bilevel images makes PIL resize
with nearest neighbour; RGB, grayscale ('L') and RGBA images give the same pixels.
"""

from __future__ import annotations

import concurrent.futures
import io
import os
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

if TYPE_CHECKING:
  from PIL import Image as PILImage

DEFAULT_CHUNK = 256  # images fetched and decoded per step (bounds memory while decoding)


class ImageDecodeError(ValueError):
  """An image's bytes are not a decodable JPEG/PNG; the message names the image."""


def clip_resize_crop(image: "PILImage.Image", size: int) -> np.ndarray:
  """CLIP's evaluation preprocessing of a PIL image, as uint8 ``[size, size, 3]``.

  Args:
    image: a ``PIL.Image.Image`` of any size and mode.
    size: the model's input side (224 for CLIP ViT-B/16).
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  if size < 1:
    raise ValueError(f"size must be >= 1, got {size}")
  image = image.convert("RGB")
  width, height = image.size
  if width <= height:
    new_width, new_height = size, int(size * height / width)
  else:
    new_width, new_height = int(size * width / height), size
  if (new_width, new_height) != (width, height):
    image = image.resize((new_width, new_height), Image.Resampling.BICUBIC)
  top = int(round((new_height - size) / 2.0))
  left = int(round((new_width - size) / 2.0))
  return np.asarray(image, np.uint8)[top:top + size, left:left + size]


def decode_image(data: bytes, size: int, where: str = "image") -> np.ndarray:
  """Decodes encoded JPEG/PNG ``data`` and applies ``clip_resize_crop``.

  Raises:
    ImageDecodeError: naming ``where`` when the bytes are not a decodable image.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    with Image.open(io.BytesIO(data)) as image:
      return clip_resize_crop(image, size)
  except (OSError, SyntaxError, Image.DecompressionBombError) as e:
    raise ImageDecodeError(f"{where}: cannot decode the image ({e})") from e


def to_unit_float(images: np.ndarray) -> np.ndarray:
  """uint8 images as float32 in [0, 1] (CLIP's ``ToTensor``, channels last)."""
  return np.asarray(images, np.float32) / np.float32(255.0)


def default_workers() -> int:
  """Decoding threads: the CPUs this process may use, at most 16 (PIL frees the GIL)."""
  return max(1, min(16, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                    else os.cpu_count() or 1))


def decode_rows(fetch: Callable[[np.ndarray], list[bytes]], rows: Sequence[int], size: int,
                out: np.ndarray | None = None, *, describe: Callable[[int], str] = str,
                chunk_size: int = DEFAULT_CHUNK, workers: int | None = None) -> np.ndarray:
  """Fetches and decodes ``rows`` chunk by chunk into uint8 ``[len(rows), size, size, 3]``.

  Args:
    fetch: ``fetch(rows) -> [bytes, ...]`` (an ``ImageSplit.fetch``).
    rows: the rows to decode, in output order.
    size: output side.
    out: where to write (e.g. a memmap); default a new array.
    describe: ``describe(row) -> str``, the image in error messages.
    chunk_size: rows fetched per step.
    workers: decoding threads (default ``default_workers()``).
  """
  rows = np.asarray(rows, np.int64)
  if out is None:
    out = np.empty((rows.size, size, size, 3), np.uint8)
  if out.shape != (rows.size, size, size, 3) or out.dtype != np.uint8:
    raise ValueError(f"out must be uint8 {(rows.size, size, size, 3)}, got {out.dtype} "
                     f"{out.shape}")
  with concurrent.futures.ThreadPoolExecutor(workers or default_workers()) as pool:
    for start in range(0, rows.size, chunk_size):
      chunk = rows[start:start + chunk_size]
      encoded = fetch(chunk)
      decoded = pool.map(lambda pair: decode_image(pair[1], size, describe(int(pair[0]))),
                         zip(chunk, encoded))
      for i, image in enumerate(decoded):
        out[start + i] = image
  return out
