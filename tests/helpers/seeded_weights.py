"""Deterministic random weights keyed by tensor name, for the full-size golden checks.

The real CLIP ViT-B/16 and MAE ViT-B/16 shapes are checked against ``transformers``
without storing their weights: every tensor is regenerated from its name and shape, here
(by ``tests/models/test_clip.py`` / ``test_vit.py``, from the loaders' tables of names and
shapes) and by ``scripts/golden/make_clip_golden.py`` (from the ``transformers`` model's
state dict, with ``load_state_dict``). Only numpy and the standard library are imported,
so the golden script's torch environment loads this file as it is.

Scales keep activations O(1) through twelve blocks: LayerNorm weights ``1 + 0.1 n`` and
biases ``0.1 n``; other biases ``0.1 n``; embeddings (token, position, class) ``0.5 n``;
Linear ``[out, in]`` and convolution ``[out, in, h, w]`` weights ``n / sqrt(fan_in)``;
``logit_scale`` ``log(1 / 0.07) + 0.1 n``; where ``n`` is a float32 standard normal
draw of ``numpy.random.default_rng(zlib.crc32(name))`` (numpy's ``PCG64`` stream).

Example:
    >>> state_dict = seeded_state_dict({"text_projection.weight": (512, 512)})
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping

import numpy as np

LOGIT_SCALE = math.log(1 / 0.07)


def seeded_tensor(name: str, shape: tuple[int, ...]) -> np.ndarray:
  """The float32 tensor ``name`` of ``shape`` (see the module docstring)."""
  shape = tuple(int(s) for s in shape)
  n = np.random.default_rng(zlib.crc32(name.encode())).standard_normal(shape, dtype=np.float32)
  if name == "logit_scale":
    return np.asarray(np.float32(LOGIT_SCALE) + np.float32(0.1) * n, np.float32)
  if "norm" in name:  # layer_norm1, pre_layrnorm, layernorm_before, final_layer_norm, ...
    return (np.float32(1.0) + np.float32(0.1) * n) if name.endswith(".weight") \
        else np.float32(0.1) * n
  if name.endswith(".bias"):
    return np.float32(0.1) * n
  if len(shape) == 4:
    return n / np.float32(math.sqrt(shape[1] * shape[2] * shape[3]))
  if "embed" in name or "cls_token" in name:
    return np.float32(0.5) * n
  if len(shape) == 2 and name.endswith(".weight"):
    return n / np.float32(math.sqrt(shape[1]))
  raise ValueError(f"no seeding rule for tensor {name!r} of shape {list(shape)}")


def seeded_state_dict(shapes: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
  """``name -> seeded_tensor(name, shape)`` for every entry of ``shapes``."""
  return {name: seeded_tensor(name, shape) for name, shape in shapes.items()}
