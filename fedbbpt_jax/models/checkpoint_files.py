"""The files of a local Hugging Face model folder: ``config.json`` and the weights.

Weights are read without torch or the ``safetensors`` package, from the first of
``WEIGHT_FILES`` the folder holds:

* ``model.safetensors`` (float32 / float16 / int tensors; ``minilm.read_safetensors``);
* ``pytorch_model.bin``, in torch's zip format (``torch_zip``) or its legacy pre-1.6 format
  (``torch_legacy``).

Sharded checkpoints (``*.index.json`` with several weight files) are not supported.

Example:
    >>> tensors, path = read_folder_weights("/models/clip-vit-base-patch16")
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from fedbbpt_jax.models.minilm import read_safetensors
from fedbbpt_jax.models.torch_zip import load_torch_state_dict

__all__ = ["WEIGHT_FILES", "read_config_json", "read_folder_weights", "read_weights_file"]

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def read_weights_file(path: str) -> dict[str, np.ndarray]:
  """Every tensor of a ``.safetensors`` file, or of a ``torch.save``-d state dict."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no such weights file")
  if path.endswith(".safetensors"):
    return read_safetensors(path)
  return load_torch_state_dict(path)


def read_folder_weights(folder: str) -> tuple[dict[str, np.ndarray], str]:
  """``(tensors, path)`` of the first of ``WEIGHT_FILES`` in ``folder``."""
  for name in WEIGHT_FILES:
    path = os.path.join(folder, name)
    if os.path.isfile(path):
      return read_weights_file(path), path
  sharded = [n for n in sorted(os.listdir(folder)) if n.endswith(".index.json")] \
      if os.path.isdir(folder) else []
  if sharded:
    raise ValueError(f"{folder}: sharded checkpoints ({sharded[0]}) are not supported; "
                     f"a folder holds one of {list(WEIGHT_FILES)}")
  raise FileNotFoundError(f"{folder}: no weights file; a folder holds one of "
                          f"{list(WEIGHT_FILES)}")


def read_config_json(folder: str) -> dict[str, Any]:
  """The parsed ``config.json`` of ``folder``."""
  path = os.path.join(folder, "config.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{folder}: no config.json (a Hugging Face model folder holds "
                            "config.json and its weights)")
  with open(path) as f:
    return json.load(f)
