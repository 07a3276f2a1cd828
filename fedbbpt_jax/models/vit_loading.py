"""Hugging Face ViT and ViT-MAE folders -> ``vit.ViTConfig`` and ``vit.ViT`` parameters.

A folder holds ``config.json`` (``model_type`` ``'vit'`` or ``'vit_mae'``; fields it
leaves out take ``transformers``' defaults, the same for both) and ``model.safetensors``
or ``pytorch_model.bin`` (``checkpoint_files``). Tensors may carry the ``vit.`` prefix of
the task models (``ViTForImageClassification``, ``ViTMAEForPreTraining``); the heads those
models add (``pooler``, ``classifier``, the MAE ``decoder``) and ViT's optional
``embeddings.mask_token`` are not part of the encoder and are skipped. Every other tensor
is checked by name and shape.

MAE's random masking is not part of the encoder: every patch is kept, in order (see
``vit``). E.g. ``facebook/vit-mae-base`` gives the [CLS] feature of BlackVIP's coordinator
encoder.

Example:
    >>> config, params = load_vit("/models/vit-mae-base")
    >>> cls = jax.jit(vit_cls, static_argnums=1)(params, config, pixels)   # [B, 768]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fedbbpt_jax.models.checkpoint_files import read_config_json, read_folder_weights
from fedbbpt_jax.models.checkpoint_tensors import (
    TensorRule,
    encoder_rules,
    norm_rules,
    params_from_rules,
)
from fedbbpt_jax.models.pre_ln_transformer import ACTIVATIONS
from fedbbpt_jax.models.vit import ViTConfig

__all__ = ["HF_VIT_DEFAULTS", "activation_of", "hf_vit_rules", "load_vit", "square_side",
           "vit_config_from_hf", "vit_params_from_hf"]

MODEL_TYPES = ("vit", "vit_mae")
# transformers 4.57's ViTConfig / ViTMAEConfig defaults (config.json may omit them).
HF_VIT_DEFAULTS = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                   "intermediate_size": 3072, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
                   "image_size": 224, "patch_size": 16, "num_channels": 3, "qkv_bias": True}
HF_VIT_BLOCK = {"norm1": "layernorm_before", "query": "attention.attention.query",
                "key": "attention.attention.key", "value": "attention.attention.value",
                "attention_out": "attention.output.dense", "norm2": "layernorm_after",
                "mlp_in": "intermediate.dense", "mlp_out": "output.dense"}
_HEADS = ("pooler.", "classifier.", "decoder.")


def square_side(value: Any, field: str, source: str) -> int:
  """An ``image_size`` / ``patch_size`` given as an int or as equal ``[h, w]``."""
  if isinstance(value, (list, tuple)):
    if len(value) != 2 or value[0] != value[1]:
      raise ValueError(f"{source}: {field}={value!r}; only square sizes are supported")
    value = value[0]
  return int(value)


def activation_of(name: Any, field: str, source: str) -> str:
  """A ``hidden_act`` the port implements (a key of ``ACTIVATIONS``), else an error."""
  if name not in ACTIVATIONS:
    raise ValueError(f"{source}: {field}={name!r} is not one of {sorted(ACTIVATIONS)}")
  return name


def vit_config_from_hf(d: Mapping[str, Any], source: str = "config.json") -> ViTConfig:
  """The encoder's architecture from a ViT / ViT-MAE ``config.json`` dict."""
  if d.get("model_type") not in MODEL_TYPES:
    raise ValueError(f"{source}: model_type={d.get('model_type')!r} is not one of "
                     f"{list(MODEL_TYPES)} (a CLIP folder loads with clip_loading.load_clip)")
  get = lambda key: d.get(key, HF_VIT_DEFAULTS[key])
  return ViTConfig(
      hidden_size=int(get("hidden_size")), num_layers=int(get("num_hidden_layers")),
      num_heads=int(get("num_attention_heads")),
      intermediate_size=int(get("intermediate_size")),
      patch_size=square_side(get("patch_size"), "patch_size", source),
      image_size=square_side(get("image_size"), "image_size", source),
      layer_norm_eps=float(get("layer_norm_eps")),
      activation=activation_of(get("hidden_act"), "hidden_act", source),
      pre_norm=False, patch_bias=True, qkv_bias=bool(get("qkv_bias")),
      num_channels=int(get("num_channels")))


def hf_vit_rules(config: ViTConfig) -> list[TensorRule]:
  """One rule per tensor of a Hugging Face ``ViTModel`` / ``ViTMAEModel`` (no prefix)."""
  c = config
  d, p = c.hidden_size, c.patch_size
  rules = [
      TensorRule("embeddings.cls_token", (1, 1, d), ("class_embedding",), "squeeze"),
      TensorRule("embeddings.position_embeddings", (1, 1 + c.num_patches, d),
                 ("position_embedding",), "squeeze"),
      TensorRule("embeddings.patch_embeddings.projection.weight", (d, c.num_channels, p, p),
                 ("patch_embedding", "kernel"), "conv"),
      TensorRule("embeddings.patch_embeddings.projection.bias", (d,),
                 ("patch_embedding", "bias")),
  ]
  rules += encoder_rules(lambda i: f"encoder.layer.{i}", ("encoder",), c.block, c.num_layers,
                         HF_VIT_BLOCK)
  return rules + norm_rules("layernorm", ("final_norm",), d)


def _skipped(name: str) -> bool:
  return name.startswith(_HEADS) or name == "embeddings.mask_token"


def vit_params_from_hf(tensors: Mapping[str, np.ndarray], config: ViTConfig,
                       source: str = "ViT weights") -> dict:
  """``ViT`` parameters from Hugging Face tensors (``vit.`` prefix optional).

  Raises:
    CheckpointMismatch: Naming ``source`` and every missing, unexpected or mis-shaped
      tensor (names after the ``vit.`` prefix, when the checkpoint has one).
  """
  if any(name.startswith("vit.") for name in tensors):
    tensors = {name.removeprefix("vit."): t for name, t in tensors.items()}
    source = f"{source} (names after the 'vit.' prefix)"
  return params_from_rules(tensors, hf_vit_rules(config), source, ignore=_skipped)


def load_vit(folder: str) -> tuple[ViTConfig, dict]:
  """``(config, params)`` of a local Hugging Face ViT or ViT-MAE folder."""
  config = vit_config_from_hf(read_config_json(folder), f"{folder}/config.json")
  tensors, path = read_folder_weights(folder)
  return config, vit_params_from_hf(tensors, config, path)
