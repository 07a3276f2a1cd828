"""CLIP in Flax: a ViT vision tower, a causal text transformer, projections, logit scale.

The computation is Hugging Face ``transformers`` 4.57's ``CLIPModel`` (tests compare both
on random weights of the tiny and of the real ViT-B/16 shapes):

* **Image** ``pixels [B, S, S, 3]`` (NHWC, already normalised with CLIP's mean and std)
  -> ``vit.ViT`` (with ``pre_norm``; its final LayerNorm is CLIP's ``post_layernorm``)
  -> the [CLS] token -> ``visual_projection`` (no bias): ``get_image_features``.
* **Text** ``ids, mask [B, L]`` (``L`` <= ``max_positions``) -> token + learned position
  embeddings -> pre-LayerNorm blocks under a causal mask that also hides padded keys
  -> ``final_layer_norm`` -> the hidden state at one position per row ->
  ``text_projection`` (no bias): ``get_text_features``. The position is chosen as
  ``CLIPTextTransformer`` does: with ``eos_token_id == 2`` in the config (the original
  OpenAI checkpoints; ``pool='argmax'``) the position of the largest id (the end token is
  the last id of CLIP's vocabulary); otherwise (``pool='first_eos'``) the first position
  whose id is ``eos_token_id`` (0 in a row that has none, as ``argmax`` of all zeros).
* **Logits** ``exp(logit_scale) * cos(image, text)``: ``[B_images, B_texts]``
  (``logits_per_image``).

The functions take ``params`` as an argument (frozen weights are never closed over, see
the package docstring) and ``config`` as a static argument:
``jax.jit(image_embeds, static_argnums=1)``.

Example:
    >>> config, params, tokenizer = clip_loading.load_clip("/models/clip-vit-base-patch16")
    >>> ids, mask = tokenizer(["a photo of a cat", "a photo of a dog"])
    >>> logits = logits_per_image(params, config, pixels, ids, mask)        # [B, 2]
"""

from __future__ import annotations

from dataclasses import dataclass

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.models.pre_ln_transformer import BlockSpec, PreLNEncoder, layer_norm
from fedbbpt_jax.models.vit import ViT, ViTConfig

__all__ = [
    "CLIP",
    "CLIPConfig",
    "CLIPTextConfig",
    "CLIPTextTower",
    "CLIP_MEAN",
    "CLIP_STD",
    "POOLS",
    "image_embeds",
    "logits_from_embeds",
    "logits_per_image",
    "pooled_positions",
    "text_embeds",
]

# OpenAI CLIP's pixel normalisation (``CLIPImageProcessor``'s image_mean / image_std).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
POOLS = ("argmax", "first_eos")


@dataclass(frozen=True)
class CLIPTextConfig:
  """Static architecture of CLIP's text tower.

  Attributes:
    vocab_size: Rows of the token embedding.
    hidden_size: Token width.
    num_layers: Transformer blocks.
    num_heads: Attention heads.
    intermediate_size: MLP width.
    max_positions: Rows of the position embedding (the longest row, 77 for CLIP).
    layer_norm_eps: Epsilon of every LayerNorm.
    activation: ``'quick_gelu'`` or ``'gelu'``.
    eos_token_id: The end-of-text id (used by ``pool='first_eos'``).
    pool: ``'argmax'`` (position of the largest id) or ``'first_eos'``.
  """

  vocab_size: int
  hidden_size: int
  num_layers: int
  num_heads: int
  intermediate_size: int
  max_positions: int
  layer_norm_eps: float
  activation: str
  eos_token_id: int
  pool: str = "first_eos"

  def __post_init__(self):
    if self.pool not in POOLS:
      raise ValueError(f"pool={self.pool!r} is not one of {list(POOLS)}")
    _ = self.block  # checks the heads and the activation

  @property
  def block(self) -> BlockSpec:
    return BlockSpec(self.hidden_size, self.num_heads, self.intermediate_size,
                     self.layer_norm_eps, self.activation)


@dataclass(frozen=True)
class CLIPConfig:
  """Both towers and the shared embedding width ``projection_dim``."""

  vision: ViTConfig
  text: CLIPTextConfig
  projection_dim: int

  def __post_init__(self):
    if not self.vision.pre_norm or self.vision.patch_bias:
      raise ValueError("CLIP's vision tower has a pre-LayerNorm and a patch convolution "
                       f"without bias; got pre_norm={self.vision.pre_norm}, "
                       f"patch_bias={self.vision.patch_bias}")


def pooled_positions(ids: jnp.ndarray, config: CLIPTextConfig) -> jnp.ndarray:
  """The position ``[B]`` of each row whose hidden state is the text feature."""
  if config.pool == "argmax":
    return jnp.argmax(ids, axis=-1)
  return jnp.argmax((ids == config.eos_token_id).astype(jnp.int32), axis=-1)


class CLIPTextTower(nn.Module):
  """``ids, mask [B, L]`` -> final hidden states ``[B, L, W]`` (after ``final_norm``)."""

  config: CLIPTextConfig

  @nn.compact
  def __call__(self, ids: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    c = self.config
    length = ids.shape[-1]
    if length > c.max_positions:
      raise ValueError(f"rows of {length} tokens exceed the model's {c.max_positions} "
                       "positions")
    x = nn.Embed(c.vocab_size, c.hidden_size, name="token_embedding")(ids)
    positions = self.param("position_embedding", nn.initializers.normal(0.01),
                           (c.max_positions, c.hidden_size))
    x = x + positions[:length]
    seen = jnp.tril(jnp.ones((length, length), bool))[None] & (mask[:, None, :] > 0)
    bias = jnp.where(seen, 0.0, jnp.finfo(x.dtype).min)[:, None]          # [B, 1, L, L]
    x = PreLNEncoder(c.block, c.num_layers, name="encoder")(x, bias)
    return layer_norm(c.layer_norm_eps, "final_norm")(x)


class CLIP(nn.Module):
  """Both towers; ``__call__`` gives ``logits_per_image [B_images, B_texts]``."""

  config: CLIPConfig

  def setup(self) -> None:
    c = self.config
    self.vision = ViT(c.vision)
    self.visual_projection = nn.Dense(c.projection_dim, use_bias=False)
    self.text = CLIPTextTower(c.text)
    self.text_projection = nn.Dense(c.projection_dim, use_bias=False)
    self.logit_scale = self.param("logit_scale", nn.initializers.constant(np.log(1 / 0.07)),
                                  ())

  def image_embeds(self, pixels: jnp.ndarray) -> jnp.ndarray:
    """Projected (unnormalised) image features ``[B, E]``."""
    return self.visual_projection(self.vision(pixels)[:, 0])

  def text_embeds(self, ids: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """Projected (unnormalised) text features ``[B, E]``."""
    hidden = self.text(ids, mask)
    pooled = hidden[jnp.arange(hidden.shape[0]), pooled_positions(ids, self.config.text)]
    return self.text_projection(pooled)

  def __call__(self, pixels: jnp.ndarray, ids: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    return logits_from_embeds(self.image_embeds(pixels), self.text_embeds(ids, mask),
                              self.logit_scale)


def image_embeds(params: dict, config: CLIPConfig, pixels: jnp.ndarray) -> jnp.ndarray:
  """``get_image_features``: projected image features ``[B, E]`` of NHWC ``pixels``."""
  return CLIP(config).apply({"params": params}, pixels, method=CLIP.image_embeds)


def text_embeds(params: dict, config: CLIPConfig, ids: jnp.ndarray,
                mask: jnp.ndarray) -> jnp.ndarray:
  """``get_text_features``: projected text features ``[B, E]`` of token rows."""
  return CLIP(config).apply({"params": params}, ids, mask, method=CLIP.text_embeds)


def logits_from_embeds(image_features: jnp.ndarray, text_features: jnp.ndarray,
                       logit_scale: jnp.ndarray) -> jnp.ndarray:
  """``exp(logit_scale) * cosine`` of every image with every text: ``[B_images, B_texts]``
  (the text features of class prompts can be computed once and reused)."""
  image = image_features / jnp.sqrt(jnp.sum(image_features ** 2, axis=-1, keepdims=True))
  text = text_features / jnp.sqrt(jnp.sum(text_features ** 2, axis=-1, keepdims=True))
  return jnp.exp(logit_scale) * (image @ text.T)


def logits_per_image(params: dict, config: CLIPConfig, pixels: jnp.ndarray, ids: jnp.ndarray,
                     mask: jnp.ndarray) -> jnp.ndarray:
  """``CLIPModel(...).logits_per_image``: ``[B_images, B_texts]``."""
  return CLIP(config).apply({"params": params}, pixels, ids, mask)
