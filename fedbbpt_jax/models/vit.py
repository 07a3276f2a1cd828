"""A ViT image encoder in Flax: CLIP's vision tower, Hugging Face ViT and ViT-MAE.

``pixels [B, H, W, C]`` (NHWC, already normalised) -> a ``patch_size`` x ``patch_size``
stride-``patch_size`` convolution -> ``(H / P) * (W / P)`` patch tokens in row-major
order, a learned class token in front, learned position embeddings added; an optional
LayerNorm (CLIP's ``pre_layrnorm``); ``num_layers`` pre-LayerNorm blocks; a final
LayerNorm over every token. The output is the final hidden states ``[B, 1 + N, D]``;
``[:, 0]`` is the [CLS] feature. With ``final_norm=False`` the output is the last block's
states before that LayerNorm (``vit_hidden_before_norm``): Hugging Face's
``hidden_states[-1]``, which BlackVIP's coordinator reads (``hidden_states[-1][:, 0]`` of
``ViTForImageClassification`` loaded from ``facebook/vit-mae-base``).

What the final LayerNorm is in each reference (Hugging Face ``transformers``):

* ViT / ViT-MAE: ``layernorm``, so the output equals ``last_hidden_state`` (for MAE with
  every patch kept in order: ``mask_ratio=0`` and ``noise=arange``; with random noise
  the patch tokens come shuffled but the [CLS] token is the same).
* CLIP: ``post_layernorm``, which CLIP applies to the pooled [CLS] only; LayerNorm is
  per token, so ``[:, 0]`` equals CLIP's ``pooler_output``.

Parameters: ``patch_embedding`` (``kernel [P, P, C, D]``, optional ``bias``),
``class_embedding [D]``, ``position_embedding [1 + N, D]``, optional ``pre_norm``,
``encoder/layer_i`` (see ``pre_ln_transformer``), ``final_norm``.

Example:
    >>> config, params = vit_loading.load_vit("/models/vit-mae-base")
    >>> cls = vit_features(params, config, pixels)[:, 0]          # [B, 768]
"""

from __future__ import annotations

from dataclasses import dataclass

import flax.linen as nn
import jax.numpy as jnp

from fedbbpt_jax.models.pre_ln_transformer import BlockSpec, PreLNEncoder, layer_norm

__all__ = ["ViT", "ViTConfig", "vit_cls", "vit_cls_before_norm", "vit_features",
           "vit_hidden_before_norm"]


@dataclass(frozen=True)
class ViTConfig:
  """Static architecture of a ViT encoder.

  Attributes:
    hidden_size: Token width ``D``.
    num_layers: Transformer blocks.
    num_heads: Attention heads.
    intermediate_size: MLP width.
    patch_size: Side ``P`` of a square patch (and the convolution's stride).
    image_size: Side of the square input image.
    layer_norm_eps: Epsilon of every LayerNorm.
    activation: ``'quick_gelu'`` (OpenAI CLIP) or ``'gelu'`` (exact; ViT, MAE, LAION CLIP).
    pre_norm: Whether a LayerNorm precedes the blocks (CLIP's ``pre_layrnorm``).
    patch_bias: Whether the patch convolution has a bias (ViT / MAE yes, CLIP no).
    qkv_bias: Whether the query / key / value projections have biases.
    num_channels: Input channels.
  """

  hidden_size: int
  num_layers: int
  num_heads: int
  intermediate_size: int
  patch_size: int
  image_size: int
  layer_norm_eps: float
  activation: str
  pre_norm: bool = False
  patch_bias: bool = True
  qkv_bias: bool = True
  num_channels: int = 3

  def __post_init__(self):
    if self.image_size % self.patch_size:
      raise ValueError(f"image_size={self.image_size} is not a multiple of "
                       f"patch_size={self.patch_size}")
    _ = self.block  # checks the heads and the activation

  @property
  def block(self) -> BlockSpec:
    return BlockSpec(self.hidden_size, self.num_heads, self.intermediate_size,
                     self.layer_norm_eps, self.activation, self.qkv_bias)

  @property
  def num_patches(self) -> int:
    return (self.image_size // self.patch_size) ** 2


class ViT(nn.Module):
  """``pixels [B, S, S, C]`` -> final hidden states ``[B, 1 + N, D]`` (token 0 = [CLS]);
  ``final_norm=False``: the last block's states, before the final LayerNorm."""

  config: ViTConfig

  @nn.compact
  def __call__(self, pixels: jnp.ndarray, final_norm: bool = True) -> jnp.ndarray:
    c = self.config
    expected = (c.image_size, c.image_size, c.num_channels)
    if tuple(pixels.shape[1:]) != expected:
      raise ValueError(f"pixels have shape {tuple(pixels.shape)}; the model takes "
                       f"[batch, {c.image_size}, {c.image_size}, {c.num_channels}] (NHWC)")
    p = c.patch_size
    patches = nn.Conv(c.hidden_size, (p, p), strides=(p, p), padding="VALID",
                      use_bias=c.patch_bias, name="patch_embedding")(pixels)
    patches = patches.reshape(pixels.shape[0], c.num_patches, c.hidden_size)
    init = nn.initializers.normal(0.02)
    cls = self.param("class_embedding", init, (c.hidden_size,))
    positions = self.param("position_embedding", init, (1 + c.num_patches, c.hidden_size))
    cls = jnp.broadcast_to(cls, (pixels.shape[0], 1, c.hidden_size))
    x = jnp.concatenate([cls, patches], axis=1) + positions
    if c.pre_norm:
      x = layer_norm(c.layer_norm_eps, "pre_norm")(x)
    x = PreLNEncoder(c.block, c.num_layers, name="encoder")(x)
    if not final_norm:
      return x
    return layer_norm(c.layer_norm_eps, "final_norm")(x)


def vit_features(params: dict, config: ViTConfig, pixels: jnp.ndarray) -> jnp.ndarray:
  """Final hidden states ``[B, 1 + N, D]`` of ``pixels [B, S, S, C]`` (jit with
  ``static_argnums=1``; ``params`` is passed in, never closed over)."""
  return ViT(config).apply({"params": params}, pixels)


def vit_cls(params: dict, config: ViTConfig, pixels: jnp.ndarray) -> jnp.ndarray:
  """The [CLS] feature ``[B, D]`` after the final LayerNorm."""
  return vit_features(params, config, pixels)[:, 0]


def vit_hidden_before_norm(params: dict, config: ViTConfig, pixels: jnp.ndarray) -> jnp.ndarray:
  """The last block's hidden states ``[B, 1 + N, D]``, before the final LayerNorm
  (Hugging Face's ``hidden_states[-1]``; ``params`` still holds ``final_norm``, unused)."""
  return ViT(config).apply({"params": params}, pixels, final_norm=False)


def vit_cls_before_norm(params: dict, config: ViTConfig, pixels: jnp.ndarray) -> jnp.ndarray:
  """The [CLS] token ``[B, D]`` of the last block, before the final LayerNorm: BlackVIP's
  ``hidden_states[-1][:, 0]``."""
  return vit_hidden_before_norm(params, config, pixels)[:, 0]
