"""CLIP checkpoints -> ``clip.CLIPConfig`` and ``clip.CLIP`` parameters, without torch.

Two sources, one parameter tree:

* **Hugging Face folders** (``load_clip``; e.g. ``openai/clip-vit-base-patch16``):
  ``config.json`` (``model_type`` ``'clip'``; a field it leaves out takes
  ``transformers`` 4.57's default, and ``text_config_dict`` / ``vision_config_dict``, when
  present, replace ``text_config`` / ``vision_config`` as ``CLIPConfig`` does),
  ``model.safetensors`` or ``pytorch_model.bin`` (``checkpoint_files``) with
  ``CLIPModel``'s tensor names, and ``tokenizer.json`` (``clip_tokenizer``). Old files'
  ``*.embeddings.position_ids`` buffers are skipped.
* **open_clip state dicts** (``load_open_clip``; ``open_clip_model.safetensors`` or
  ``open_clip_pytorch_model.bin``, or any file of them): OpenAI's names
  (``visual.conv1.weight``, ``visual.class_embedding``,
  ``visual.transformer.resblocks.N.attn.in_proj_weight`` [3D, D] holding query, key and
  value rows in that order, ``visual.proj`` and ``text_projection`` as ``x @ proj``
  matrices, ``logit_scale``). The architecture is read from the tensors' shapes as
  open_clip's ``build_model_from_openai_state_dict`` does (heads = width / 64), or from an
  ``open_clip_config.json`` beside the weights (``model_cfg``: ``quick_gelu``,
  ``vision_cfg.head_width``, ``text_cfg.heads``). open_clip pools text at the largest id
  (``pool='argmax'``). Whether the MLPs use QuickGELU is not in the weights: OpenAI's
  weights need ``quick_gelu=True``, open_clip's own trainings use exact GELU.

Every tensor is checked by name and shape: a missing, unexpected or mis-shaped tensor
raises ``CheckpointMismatch`` naming the file, the tensor and the expected shape.

Example:
    >>> config, params, tokenizer = load_clip("/models/clip-vit-base-patch16")
    >>> ids, mask = tokenizer(["a photo of a cat", "a photo of a dog"])
    >>> logits = jax.jit(clip.logits_per_image, static_argnums=1)(params, config, pixels, ids, mask)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from typing import Any, Callable

import numpy as np

from fedbbpt_jax.models.checkpoint_files import (
    read_config_json,
    read_folder_weights,
    read_weights_file,
)
from fedbbpt_jax.models.checkpoint_tensors import (
    TensorRule,
    check_tensors,
    encoder_rules,
    linear_rules,
    norm_rules,
    params_from_rules,
)
from fedbbpt_jax.models.clip import CLIPConfig, CLIPTextConfig
from fedbbpt_jax.models.clip_tokenizer import CLIPTokenizer
from fedbbpt_jax.models.vit import ViTConfig
from fedbbpt_jax.models.vit_loading import activation_of, square_side

__all__ = [
    "HF_CLIP_TEXT_DEFAULTS",
    "HF_CLIP_VISION_DEFAULTS",
    "OPEN_CLIP_FILES",
    "clip_config_from_hf",
    "clip_config_from_open_clip",
    "clip_params_from_hf",
    "clip_params_from_open_clip",
    "hf_clip_rules",
    "load_clip",
    "load_open_clip",
    "open_clip_shapes",
    "open_clip_to_hf",
]

# transformers 4.57's CLIPTextConfig / CLIPVisionConfig / CLIPConfig defaults.
HF_CLIP_TEXT_DEFAULTS = {"vocab_size": 49408, "hidden_size": 512, "intermediate_size": 2048,
                         "num_hidden_layers": 12, "num_attention_heads": 8,
                         "max_position_embeddings": 77, "hidden_act": "quick_gelu",
                         "layer_norm_eps": 1e-5, "eos_token_id": 49407}
HF_CLIP_VISION_DEFAULTS = {"hidden_size": 768, "intermediate_size": 3072,
                           "num_hidden_layers": 12, "num_attention_heads": 12,
                           "num_channels": 3, "image_size": 224, "patch_size": 32,
                           "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}
HF_PROJECTION_DIM = 512
# ``CLIPTextTransformer``: a config saying eos_token_id == 2 (before transformers PR
# #24773) pools at the largest id; any other value at the first end token.
LEGACY_EOS_TOKEN_ID = 2
HF_CLIP_BLOCK = {"norm1": "layer_norm1", "query": "self_attn.q_proj", "key": "self_attn.k_proj",
                 "value": "self_attn.v_proj", "attention_out": "self_attn.out_proj",
                 "norm2": "layer_norm2", "mlp_in": "mlp.fc1", "mlp_out": "mlp.fc2"}
OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
# Entries of OpenAI's jit archives that are not tensors of the model.
_OPEN_CLIP_METADATA = ("input_resolution", "context_length", "vocab_size")
_OPEN_CLIP_HEAD_WIDTH = 64


# -- Hugging Face -----------------------------------------------------------------------

def _sub_config(d: Mapping[str, Any], tower: str) -> dict[str, Any]:
  explicit = d.get(f"{tower}_config_dict")
  return dict(explicit if explicit is not None else (d.get(f"{tower}_config") or {}))


def clip_config_from_hf(d: Mapping[str, Any], source: str = "config.json") -> CLIPConfig:
  """The architecture from a ``CLIPModel`` ``config.json`` dict."""
  if d.get("model_type") != "clip":
    raise ValueError(f"{source}: model_type={d.get('model_type')!r}, expected 'clip' "
                     "(a ViT / ViT-MAE folder loads with vit_loading.load_vit)")
  v, t = _sub_config(d, "vision"), _sub_config(d, "text")
  vget = lambda key: v.get(key, HF_CLIP_VISION_DEFAULTS[key])
  tget = lambda key: t.get(key, HF_CLIP_TEXT_DEFAULTS[key])
  vision = ViTConfig(
      hidden_size=int(vget("hidden_size")), num_layers=int(vget("num_hidden_layers")),
      num_heads=int(vget("num_attention_heads")), intermediate_size=int(vget("intermediate_size")),
      patch_size=square_side(vget("patch_size"), "vision_config.patch_size", source),
      image_size=square_side(vget("image_size"), "vision_config.image_size", source),
      layer_norm_eps=float(vget("layer_norm_eps")),
      activation=activation_of(vget("hidden_act"), "vision_config.hidden_act", source),
      pre_norm=True, patch_bias=False, qkv_bias=True, num_channels=int(vget("num_channels")))
  eos = int(tget("eos_token_id"))
  text = CLIPTextConfig(
      vocab_size=int(tget("vocab_size")), hidden_size=int(tget("hidden_size")),
      num_layers=int(tget("num_hidden_layers")), num_heads=int(tget("num_attention_heads")),
      intermediate_size=int(tget("intermediate_size")),
      max_positions=int(tget("max_position_embeddings")),
      layer_norm_eps=float(tget("layer_norm_eps")),
      activation=activation_of(tget("hidden_act"), "text_config.hidden_act", source),
      eos_token_id=eos, pool="argmax" if eos == LEGACY_EOS_TOKEN_ID else "first_eos")
  return CLIPConfig(vision, text, int(d.get("projection_dim", HF_PROJECTION_DIM)))


def hf_clip_rules(config: CLIPConfig) -> list[TensorRule]:
  """One rule per tensor of a Hugging Face ``CLIPModel``."""
  v, t, e = config.vision, config.text, config.projection_dim
  d, p = v.hidden_size, v.patch_size
  vm, tm = "vision_model", "text_model"
  rules = [
      TensorRule(f"{vm}.embeddings.patch_embedding.weight", (d, v.num_channels, p, p),
                 ("vision", "patch_embedding", "kernel"), "conv"),
      TensorRule(f"{vm}.embeddings.class_embedding", (d,), ("vision", "class_embedding")),
      TensorRule(f"{vm}.embeddings.position_embedding.weight", (1 + v.num_patches, d),
                 ("vision", "position_embedding")),
  ]
  rules += norm_rules(f"{vm}.pre_layrnorm", ("vision", "pre_norm"), d)
  rules += encoder_rules(lambda i: f"{vm}.encoder.layers.{i}", ("vision", "encoder"), v.block,
                         v.num_layers, HF_CLIP_BLOCK)
  rules += norm_rules(f"{vm}.post_layernorm", ("vision", "final_norm"), d)
  rules += linear_rules("visual_projection", ("visual_projection",), d, e, bias=False)
  w = t.hidden_size
  rules += [
      TensorRule(f"{tm}.embeddings.token_embedding.weight", (t.vocab_size, w),
                 ("text", "token_embedding", "embedding")),
      TensorRule(f"{tm}.embeddings.position_embedding.weight", (t.max_positions, w),
                 ("text", "position_embedding")),
  ]
  rules += encoder_rules(lambda i: f"{tm}.encoder.layers.{i}", ("text", "encoder"), t.block,
                         t.num_layers, HF_CLIP_BLOCK)
  rules += norm_rules(f"{tm}.final_layer_norm", ("text", "final_norm"), w)
  rules += linear_rules("text_projection", ("text_projection",), w, e, bias=False)
  return rules + [TensorRule("logit_scale", (), ("logit_scale",))]


def _hf_buffer(name: str) -> bool:
  return name in ("text_model.embeddings.position_ids", "vision_model.embeddings.position_ids")


def clip_params_from_hf(tensors: Mapping[str, np.ndarray], config: CLIPConfig,
                        source: str = "CLIP weights") -> dict:
  """``CLIP`` parameters from ``CLIPModel`` tensors (raises ``CheckpointMismatch``)."""
  return params_from_rules(tensors, hf_clip_rules(config), source, ignore=_hf_buffer)


def load_clip(folder: str) -> tuple[CLIPConfig, dict, CLIPTokenizer]:
  """``(config, params, tokenizer)`` of a local Hugging Face CLIP folder; the tokenizer
  pads rows to the text tower's ``max_position_embeddings``."""
  config = clip_config_from_hf(read_config_json(folder), os.path.join(folder, "config.json"))
  tensors, path = read_folder_weights(folder)
  params = clip_params_from_hf(tensors, config, path)
  return config, params, CLIPTokenizer.from_folder(folder, config.text.max_positions)


# -- open_clip ---------------------------------------------------------------------------

_OPEN_CLIP_BLOCK = (  # open_clip suffix -> Hugging Face suffix (in_proj: split in three)
    ("ln_1", "layer_norm1"), ("attn.out_proj", "self_attn.out_proj"), ("ln_2", "layer_norm2"),
    ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2"))

_Converter = Callable[[np.ndarray], dict[str, np.ndarray]]


def _renamed(hf_name: str) -> _Converter:
  return lambda a: {hf_name: a}


def _transposed(hf_name: str) -> _Converter:
  return lambda a: {hf_name: np.ascontiguousarray(a.T)}


def _split_in_proj(hf_layer: str, kind: str) -> _Converter:
  def split(a: np.ndarray) -> dict[str, np.ndarray]:
    q, k, v = np.split(a, 3, axis=0)
    return {f"{hf_layer}.self_attn.{n}_proj.{kind}": x for n, x in zip("qkv", (q, k, v))}
  return split


def _open_clip_entries(config: CLIPConfig) -> Iterator[tuple[str, tuple[int, ...], _Converter]]:
  """``(open_clip name, shape, converter to Hugging Face names)`` of every tensor."""
  v, t, e = config.vision, config.text, config.projection_dim
  d, p = v.hidden_size, v.patch_size

  def norm(name: str, hf: str, width: int):
    for part in ("weight", "bias"):
      yield f"{name}.{part}", (width,), _renamed(f"{hf}.{part}")

  def blocks(prefix: str, hf_prefix: str, width: int, mlp: int, layers: int):
    for i in range(layers):
      oc, hf = f"{prefix}transformer.resblocks.{i}", f"{hf_prefix}.encoder.layers.{i}"
      yield f"{oc}.attn.in_proj_weight", (3 * width, width), _split_in_proj(hf, "weight")
      yield f"{oc}.attn.in_proj_bias", (3 * width,), _split_in_proj(hf, "bias")
      for oc_part, hf_part in _OPEN_CLIP_BLOCK:
        if oc_part.startswith("ln"):
          yield from norm(f"{oc}.{oc_part}", f"{hf}.{hf_part}", width)
          continue
        d_out, d_in = {"attn.out_proj": (width, width), "mlp.c_fc": (mlp, width),
                       "mlp.c_proj": (width, mlp)}[oc_part]
        yield f"{oc}.{oc_part}.weight", (d_out, d_in), _renamed(f"{hf}.{hf_part}.weight")
        yield f"{oc}.{oc_part}.bias", (d_out,), _renamed(f"{hf}.{hf_part}.bias")

  yield "visual.conv1.weight", (d, v.num_channels, p, p), _renamed(
      "vision_model.embeddings.patch_embedding.weight")
  yield "visual.class_embedding", (d,), _renamed("vision_model.embeddings.class_embedding")
  yield "visual.positional_embedding", (1 + v.num_patches, d), _renamed(
      "vision_model.embeddings.position_embedding.weight")
  yield from norm("visual.ln_pre", "vision_model.pre_layrnorm", d)
  yield from blocks("visual.", "vision_model", d, v.intermediate_size, v.num_layers)
  yield from norm("visual.ln_post", "vision_model.post_layernorm", d)
  yield "visual.proj", (d, e), _transposed("visual_projection.weight")
  w = t.hidden_size
  yield "token_embedding.weight", (t.vocab_size, w), _renamed(
      "text_model.embeddings.token_embedding.weight")
  yield "positional_embedding", (t.max_positions, w), _renamed(
      "text_model.embeddings.position_embedding.weight")
  yield from blocks("", "text_model", w, t.intermediate_size, t.num_layers)
  yield from norm("ln_final", "text_model.final_layer_norm", w)
  yield "text_projection", (w, e), _transposed("text_projection.weight")
  yield "logit_scale", (), _renamed("logit_scale")


def open_clip_shapes(config: CLIPConfig) -> dict[str, tuple[int, ...]]:
  """open_clip name -> shape of every tensor of a CLIP with ``config``."""
  return {name: shape for name, shape, _ in _open_clip_entries(config)}


def open_clip_to_hf(tensors: Mapping[str, np.ndarray], config: CLIPConfig) -> dict[str, np.ndarray]:
  """open_clip tensors renamed (fused query/key/value split, projections transposed) to
  Hugging Face ``CLIPModel`` names; the tensors must have been checked."""
  out: dict[str, np.ndarray] = {}
  for name, _, convert in _open_clip_entries(config):
    out.update(convert(np.asarray(tensors[name])))
  return out


def _open_clip_skipped(name: str) -> bool:
  return name in _OPEN_CLIP_METADATA


def _count_layers(tensors: Mapping[str, np.ndarray], prefix: str) -> int:
  n = 0
  while f"{prefix}transformer.resblocks.{n}.attn.in_proj_weight" in tensors:
    n += 1
  return n


def _shape_of(tensors: Mapping[str, np.ndarray], name: str, source: str) -> tuple[int, ...]:
  if name not in tensors:
    raise ValueError(f"{source}: tensor {name!r} is missing; not an open_clip CLIP state dict")
  return tuple(np.shape(tensors[name]))


def clip_config_from_open_clip(tensors: Mapping[str, np.ndarray],
                               model_cfg: Mapping[str, Any] | None = None,
                               quick_gelu: bool | None = None,
                               source: str = "open_clip weights") -> CLIPConfig:
  """The architecture of an open_clip state dict, read from its shapes.

  Args:
    tensors: The state dict.
    model_cfg: ``open_clip_config.json``'s ``model_cfg``, if any (head counts, quick_gelu).
    quick_gelu: QuickGELU (OpenAI's weights) or exact GELU; default ``model_cfg``'s.
    source: Named in errors.
  """
  cfg = dict(model_cfg or {})
  vcfg, tcfg = dict(cfg.get("vision_cfg") or {}), dict(cfg.get("text_cfg") or {})
  unsupported = [f"vision_cfg.{k}" for k in ("timm_model_name", "attentional_pool")
                 if vcfg.get(k)] + [f"text_cfg.{k}" for k in ("hf_model_name",) if tcfg.get(k)]
  if tcfg.get("pool_type", "argmax") != "argmax":
    unsupported.append(f"text_cfg.pool_type={tcfg['pool_type']!r}")
  if unsupported:
    raise ValueError(f"{source}: open_clip towers with {unsupported} are not supported "
                     "(only the OpenAI CLIP architecture)")
  if quick_gelu is None:
    if "quick_gelu" not in cfg and model_cfg is None:
      raise ValueError(f"{source}: say quick_gelu=True (OpenAI's weights, open_clip's "
                       "'-quickgelu' models) or False (exact GELU); the weights do not tell")
    quick_gelu = bool(cfg.get("quick_gelu", False))
  activation = "quick_gelu" if quick_gelu else "gelu"
  d, c, p, _ = _shape_of(tensors, "visual.conv1.weight", source)
  positions = _shape_of(tensors, "visual.positional_embedding", source)[0]
  grid = round((positions - 1) ** 0.5)
  vocab, w = _shape_of(tensors, "token_embedding.weight", source)
  head_width = int(vcfg.get("head_width", _OPEN_CLIP_HEAD_WIDTH))
  text_heads = int(tcfg.get("heads", w // _OPEN_CLIP_HEAD_WIDTH))
  if d % head_width or not d // head_width or not text_heads or w % text_heads:
    raise ValueError(f"{source}: cannot split vision width {d} into heads of "
                     f"{head_width} or text width {w} into {text_heads} heads; give the head "
                     "counts in open_clip_config.json (vision_cfg.head_width, text_cfg.heads)")
  vision = ViTConfig(
      hidden_size=d, num_layers=_count_layers(tensors, "visual."), num_heads=d // head_width,
      intermediate_size=_shape_of(tensors, "visual.transformer.resblocks.0.mlp.c_fc.weight",
                                  source)[0],
      patch_size=p, image_size=p * grid, layer_norm_eps=1e-5, activation=activation,
      pre_norm=True, patch_bias=False, qkv_bias=True, num_channels=c)
  text = CLIPTextConfig(
      vocab_size=vocab, hidden_size=w, num_layers=_count_layers(tensors, ""),
      num_heads=text_heads,
      intermediate_size=_shape_of(tensors, "transformer.resblocks.0.mlp.c_fc.weight",
                                  source)[0],
      max_positions=_shape_of(tensors, "positional_embedding", source)[0],
      layer_norm_eps=1e-5, activation=activation, eos_token_id=vocab - 1, pool="argmax")
  return CLIPConfig(vision, text, _shape_of(tensors, "text_projection", source)[1])


def clip_params_from_open_clip(tensors: Mapping[str, np.ndarray], config: CLIPConfig,
                               source: str = "open_clip weights") -> dict:
  """``CLIP`` parameters from an open_clip state dict (raises ``CheckpointMismatch``)."""
  check_tensors(tensors, open_clip_shapes(config), source, ignore=_open_clip_skipped)
  return clip_params_from_hf(open_clip_to_hf(tensors, config), config, source)


def load_open_clip(path: str, quick_gelu: bool | None = None) -> tuple[CLIPConfig, dict]:
  """``(config, params)`` of an open_clip CLIP.

  Args:
    path: A weights file (``.safetensors`` or a ``torch.save``-d state dict), or a folder
      holding one of ``OPEN_CLIP_FILES`` (and optionally ``open_clip_config.json``).
    quick_gelu: Overrides ``open_clip_config.json``'s ``quick_gelu``; required without it.
  """
  folder, weights = (path, None) if os.path.isdir(path) else (os.path.dirname(path), path)
  if weights is None:
    found = [os.path.join(path, n) for n in OPEN_CLIP_FILES
             if os.path.isfile(os.path.join(path, n))]
    if not found:
      raise FileNotFoundError(f"{path}: no open_clip weights; a folder holds one of "
                              f"{list(OPEN_CLIP_FILES)}")
    weights = found[0]
  model_cfg = None
  config_path = os.path.join(folder, "open_clip_config.json")
  if os.path.isfile(config_path):
    with open(config_path) as f:
      model_cfg = json.load(f).get("model_cfg")
    if model_cfg is None:
      raise ValueError(f"{config_path}: no 'model_cfg' entry")
  tensors = read_weights_file(weights)
  config = clip_config_from_open_clip(tensors, model_cfg, quick_gelu, weights)
  return config, clip_params_from_open_clip(tensors, config, weights)
