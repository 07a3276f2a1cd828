"""BlackVIP-style coordinator: frozen client-side encoder + light trainable decoder.

The prompt depends on the input. The encoder is a fixed convolutional feature
extractor drawn once from ``encoder_seed`` (frozen, shared by every client, never
sent); it reduces the canvas to a ``[h0, h0, encoder_channels]`` map with
``h0 = canvas_size / 2**num_blocks``. A learned "trigger" ``[h0, h0, trigger_channels]``
is concatenated, and transposed convolutions (kernel 2, stride 2, GELU between)
decode it to a ``[S, S, 3]`` prompt, scaled by ``epsilon``, with no output activation.
No batch statistics are used, so a prompt never depends on its batch-mates
(methods.md pitfall 1). With the defaults at S = 64 the decoder has 8,672 parameters.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from fedbbpt_jax.prompts.base import PromptGenerator
from fedbbpt_jax.prompts.canvas import region_mask


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


class Decoder(nn.Module):
  """Trigger + transposed-convolution decoder producing the prompt."""

  out_size: int
  widths: Sequence[int]
  trigger_channels: int

  @nn.compact
  def __call__(self, z: jnp.ndarray) -> jnp.ndarray:
    h0 = z.shape[1]
    trigger = self.param("trigger", nn.initializers.uniform(0.1),
                         (h0, h0, self.trigger_channels))
    x = jnp.concatenate([z, jnp.broadcast_to(trigger, z.shape[:1] + trigger.shape)], -1)
    for width in self.widths:
      x = nn.gelu(nn.ConvTranspose(width, (2, 2), strides=(2, 2))(x))
    return nn.ConvTranspose(3, (2, 2), strides=(2, 2), use_bias=False)(x)


def make_coordinator_prompt(canvas_size: int, image_size: int, *, epsilon: float = 1.0,
                            region: str = "full", widths: Sequence[int] = (32, 32, 16),
                            encoder_channels: int = 8, trigger_channels: int = 8,
                            encoder_seed: int = 0) -> PromptGenerator:
  """Builds the coordinator prompt generator (see module docstring)."""
  num_blocks = len(widths) + 1
  if canvas_size % 2 ** num_blocks:
    raise ValueError(f"canvas_size={canvas_size} must be divisible by 2**{num_blocks} "
                     f"for a coordinator with {num_blocks} upsampling blocks")
  h0 = canvas_size // 2 ** num_blocks
  encoder = FrozenEncoder(out_size=h0, channels=encoder_channels)
  decoder = Decoder(out_size=canvas_size, widths=tuple(widths), trigger_channels=trigger_channels)
  dummy = jnp.zeros((1, canvas_size, canvas_size, 3), jnp.float32)
  encoder_vars = encoder.init(jax.random.key(encoder_seed), dummy)
  mask = region_mask(canvas_size, image_size, region)

  def init(key):
    z = jnp.zeros((1, h0, h0, encoder_channels), jnp.float32)
    return decoder.init(key, z)["params"]

  def features(canvas_images):
    return encoder.apply(encoder_vars, canvas_images)

  def apply(params, z):
    return epsilon * decoder.apply({"params": params}, z) * mask

  return PromptGenerator(name="coordinator", init=init, features=features, apply=apply)
