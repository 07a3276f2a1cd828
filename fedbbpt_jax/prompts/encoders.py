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

``'vit'`` is BlackVIP's encoder: a ViT's last-layer [CLS] token (one vector, so
``out_size`` must be 1), loaded from the local Hugging Face ViT / ViT-MAE folder
``options.weights_path`` by ``fedbbpt_jax.models.vit_loading.load_vit``, looked up only
when such an encoder is built (``vit_loader``).
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from fedbbpt_jax.core import Registry
from fedbbpt_jax.models import (EfficientNetLite0Trunk, imagenet_normalize,
                                load_efficientnet_lite0, trunk_channels, trunk_stride,
                                trunk_variables)
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


# (module, function) that loads a ViT for the 'vit' encoder; imported when one is built.
VIT_LOADER = ("fedbbpt_jax.models.vit_loading", "load_vit")


def vit_loader(where: tuple[str, str] = VIT_LOADER) -> Callable[[str], tuple[Features, int]]:
  """The ViT loader ``load_vit(folder) -> (cls_features, dim)``, imported now.

  ``cls_features(pixel_values [B, S, S, 3]) -> [B, dim]`` takes normalised pixels (as a
  Hugging Face model's ``pixel_values``, channels last) and returns the last encoder
  layer's [CLS] token. For BlackVIP's ``vit-mae-base`` that is
  ``hidden_states[-1][:, 0]`` of the MAE weights run as a plain ViT (no patch masking),
  before the final LayerNorm.

  Raises:
    ImportError: the module or the function does not exist, naming both and the
      config field that asked for it.
  """
  module_name, function = where
  try:
    module = importlib.import_module(module_name)
  except ModuleNotFoundError as e:
    if e.name != module_name and not module_name.startswith(f"{e.name}."):
      raise  # the loader exists but one of its own imports is missing
    raise ImportError(
        f"config.prompt.encoder='vit' loads its ViT with {module_name}.{function}, and "
        f"this installation has no module {module_name} (the ViT port); use a version "
        "that has it, or register your own encoder (from fedbbpt_jax.prompts.encoders "
        "import ENCODERS; ENCODERS.register('my_vit', build))") from e
  loader = getattr(module, function, None)
  if not callable(loader):
    raise ImportError(f"config.prompt.encoder='vit' loads its ViT with "
                      f"{module_name}.{function}, and {module_name} has no function "
                      f"{function!r}")
  return loader


def vit_cls_encoder(canvas_size: int, out_size: int, options: EncoderOptions,
                    loader_at: tuple[str, str] = VIT_LOADER) -> tuple[Features, int]:
  """``(features, dim)``: the [CLS] token of the ViT in ``options.weights_path``.

  The ViT reads the canvas normalised with CLIP's statistics, as BlackVIP feeds it the
  CLIP-normalised image (not the ViT's own ImageNet statistics); ``features`` returns
  ``[B, 1, 1, dim]``. ``loader_at``: the ``(module, function)`` loading the ViT
  (``vit_loader``); another value makes another loader an encoder, e.g.
  ``ENCODERS.register("my_vit", partial(vit_cls_encoder, loader_at=("my.vit", "load")))``.
  """
  del canvas_size
  if out_size != 1:
    raise ValueError(f"config.prompt.encoder='vit' gives one [CLS] vector per image, and "
                     f"this prompt kind asks for a {out_size}x{out_size} feature map: use "
                     "it with prompt.kind='blackvip' or 'frame_mixture'")
  if not options.weights_path:
    raise ValueError("config.prompt.encoder='vit' needs config.prompt.encoder_weights: a "
                     "local Hugging Face ViT or ViT-MAE folder (e.g. facebook/vit-mae-base)")
  cls_features, dim = vit_loader(loader_at)(options.weights_path)

  def features(canvas_images):
    return cls_features(clip_normalize(canvas_images))[:, None, None, :]

  return features, int(dim)


ENCODERS.register("vit", vit_cls_encoder)
