"""Frozen client-side image encoders for input-dependent prompt generators.

A client may hold a small public pretrained model and run it on its own images
without the black box (BlackVIP's clients run a public self-supervised ViT). The
only such image model available offline here is the public ImageNet
EfficientNet-Lite0 checkpoint, so its first blocks (a "trunk") serve as the
encoder. Features never depend on batch-mates (no batch statistics, unlike BlackVIP's
train-mode BatchNorm) and never receive a gradient.

Encoders are registered by name in ``ENCODERS`` (``config.prompt.encoder``):
``build(canvas_size, out_size, options) -> (features, channels)``, where
``features(canvas_images [B, S, S, 3] in [0, 1]) -> [B, out_size, out_size, channels]``.
A user adds their own: ``ENCODERS.register("my_encoder", build)``.

``'vit'`` is BlackVIP's encoder: a ViT's last-block [CLS] token before the final
LayerNorm (one vector, so ``out_size`` must be 1), loaded from the local Hugging Face ViT /
ViT-MAE folder ``options.weights_path`` by ``fedbbpt_jax.models.vit_loading.load_vit``
(``vit_cls_encoder``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from fedbbpt_jax.core import Registry
from fedbbpt_jax.models import (EfficientNetLite0Trunk, imagenet_normalize,
                                load_efficientnet_lite0, trunk_channels, trunk_stride,
                                trunk_variables, vit)
from fedbbpt_jax.models.vit_loading import load_vit
from fedbbpt_jax.prompts.clip_space import clip_normalize

Features = Callable[[jnp.ndarray], jnp.ndarray]


@dataclasses.dataclass(frozen=True)
class EncoderOptions:
  """What a prompt generator asks of its encoder, beyond the canvas and feature size.

  Attributes:
    channels: feature channels of an encoder whose width is free (``random``).
    seed: seed of an encoder with drawn weights (``random``).
    blocks: pretrained blocks kept (``efficientnet_lite0``: 8 = end of stage 4).
    weights_path: a checkpoint (None: the packaged one).
  """

  channels: int = 8
  seed: int = 0
  blocks: int = 8
  weights_path: str | None = None


# build(canvas_size, out_size, options) -> (features, channels)
ENCODERS: Registry[Callable[[int, int, EncoderOptions], tuple[Features, int]]] = Registry(
    "frozen prompt encoder", home="fedbbpt_jax.prompts.encoders.ENCODERS")


class FrozenEncoder(nn.Module):
  """Two strided 3x3 convolutions with ReLU, then average pooling to ``[h0, h0, C]``."""

  out_size: int
  channels: int

  @nn.compact
  def __call__(self, canvas_images: jnp.ndarray) -> jnp.ndarray:
    gray = jnp.mean(canvas_images, axis=-1, keepdims=True) - 0.5
    x = jax.image.resize(gray, (gray.shape[0], 4 * self.out_size, 4 * self.out_size, 1),
                         method="linear")
    x = nn.relu(nn.Conv(16, (3, 3), strides=2, padding="SAME")(x))
    x = nn.Conv(self.channels, (3, 3), strides=2, padding="SAME")(x)
    return jnp.tanh(x)


def random_conv_encoder(canvas_size: int, out_size: int, channels: int,
                        seed: int = 0) -> Callable[[jnp.ndarray], jnp.ndarray]:
  """``features(canvas_images) -> [B, out_size, out_size, channels]``: fixed random
  convolutions drawn from ``seed`` (``FrozenEncoder``)."""
  encoder = FrozenEncoder(out_size=out_size, channels=channels)
  dummy = jnp.zeros((1, canvas_size, canvas_size, 3), jnp.float32)
  # Compiled: op by op, the init's forward pass compiled each convolution separately
  # (twice as slow); the weights are the same bits.
  variables = jax.jit(encoder.init)(jax.random.key(seed), dummy)
  return lambda canvas_images: encoder.apply(variables, canvas_images)


def channel_normalized(x: jnp.ndarray, eps: float = 1e-5) -> jnp.ndarray:
  """Zero mean, unit variance over the last axis at every position."""
  mean = jnp.mean(x, axis=-1, keepdims=True)
  var = jnp.var(x, axis=-1, keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + eps)


def average_pooled(x: jnp.ndarray, out_size: int) -> jnp.ndarray:
  """``[B, s, s, C] -> [B, out_size, out_size, C]`` by averaging ``s/out_size`` blocks."""
  b, s, _, c = x.shape
  if s % out_size:
    raise ValueError(f"feature map side {s} is not a multiple of {out_size}")
  f = s // out_size
  return x.reshape(b, out_size, f, out_size, f, c).mean(axis=(2, 4))


def pretrained_trunk(canvas_size: int, out_size: int, num_blocks: int,
                     weights_path: str | None = None
                     ) -> tuple[Callable[[jnp.ndarray], jnp.ndarray], int]:
  """``(features, channels)``: the EfficientNet-Lite0 trunk as a frozen encoder.

  ``features(canvas_images [B, S, S, 3] in [0, 1]) -> [B, out_size, out_size, channels]``,
  average-pooled and normalised per position over channels.
  """
  stride = trunk_stride(num_blocks)
  side = -(-canvas_size // stride)
  if side < out_size or side % out_size:
    raise ValueError(f"prompt.encoder_blocks={num_blocks} gives {side}x{side} features at "
                     f"canvas {canvas_size}; the generator needs a multiple of {out_size}: "
                     "use fewer encoder blocks")
  _, variables = load_efficientnet_lite0(weights_path)
  trunk = EfficientNetLite0Trunk(num_blocks=num_blocks)
  trunk_vars = trunk_variables(variables, num_blocks)

  def features(canvas_images):
    fmap = trunk.apply(trunk_vars, imagenet_normalize(canvas_images))
    return channel_normalized(average_pooled(fmap, out_size))

  return features, trunk_channels(num_blocks)


ENCODERS.register("random", lambda canvas_size, out_size, options: (
    random_conv_encoder(canvas_size, out_size, options.channels, options.seed),
    options.channels))
ENCODERS.register("efficientnet_lite0", lambda canvas_size, out_size, options: pretrained_trunk(
    canvas_size, out_size, options.blocks, options.weights_path))


# The [CLS] before the final LayerNorm, compiled once per ViT architecture (config static);
# the weights are an argument of the compiled program, never constants in it.
_CLS_BEFORE_NORM = jax.jit(vit.vit_cls_before_norm, static_argnums=1)

ViTLoader = Callable[[str], tuple[vit.ViTConfig, Any]]


def vit_cls_encoder(canvas_size: int, out_size: int, options: EncoderOptions,
                    load: ViTLoader = load_vit) -> tuple[Features, int]:
  """``(features, dim)``: BlackVIP's encoder, the ViT in ``options.weights_path``.

  ``features(canvas_images [B, S, S, 3] in [0, 1]) -> [B, 1, 1, dim]``: the canvas
  normalised with CLIP's statistics (BlackVIP feeds its coordinator the CLIP-normalised
  image, not the ViT's own ImageNet statistics), run through the ViT, and the [CLS] token of
  the last block BEFORE the final LayerNorm (``vit.vit_cls_before_norm``: BlackVIP reads
  ``hidden_states[-1][:, 0]`` of ``ViTForImageClassification`` on ``facebook/vit-mae-base``;
  MAE's patch masking is not applied). A ViT whose input side differs from the canvas
  reads the normalised canvas resized to its side (bilinear, antialiased); BlackVIP's
  ViT-B/16 reads the 224 canvas as it is.

  The weights are loaded once, placed on the device and passed to the compiled encoder
  as arguments (``_CLS_BEFORE_NORM``), not closed over as constants.

  Args:
    canvas_size: side of the canvas (unused: the canvas images carry it).
    out_size: must be 1 (one vector per image).
    options: ``weights_path`` = a local Hugging Face ViT or ViT-MAE folder.
    load: ``folder -> (vit.ViTConfig, params)``; another loader makes another ViT an
      encoder, e.g. ``ENCODERS.register("my_vit", partial(vit_cls_encoder, load=my_load))``.

  Raises:
    ValueError: ``out_size != 1`` or no ``weights_path``, naming the config fields.
  """
  del canvas_size
  if out_size != 1:
    raise ValueError(f"config.prompt.encoder='vit' gives one [CLS] vector per image, and "
                     f"this prompt kind asks for a {out_size}x{out_size} feature map: use "
                     "it with prompt.kind='blackvip' or 'frame_mixture'")
  if not options.weights_path:
    raise ValueError("config.prompt.encoder='vit' needs config.prompt.encoder_weights: a "
                     "local Hugging Face ViT or ViT-MAE folder (e.g. facebook/vit-mae-base)")
  config, params = load(options.weights_path)
  params = jax.device_put(params)
  side = config.image_size

  def features(canvas_images):
    pixels = clip_normalize(canvas_images)
    if pixels.shape[1:3] != (side, side):
      pixels = jax.image.resize(pixels, (pixels.shape[0], side, side, pixels.shape[-1]),
                                method="linear", antialias=True)
    return _CLS_BEFORE_NORM(params, config, pixels)[:, None, None, :]

  return features, int(config.hidden_size)


ENCODERS.register("vit", vit_cls_encoder)
