"""BlackVIP-style coordinator: frozen client-side encoder + light trainable decoder.

The prompt depends on the input. A frozen encoder (shared by every client, never
trained, never sent) reduces the canvas to a ``[h0, h0, C]`` feature map with
``h0 = canvas_size / 2**num_blocks``; ``prompt.encoder`` chooses it:

* ``'random'``: two strided 3x3 convolutions drawn once from ``encoder_seed``
  (``C = encoder_channels``), fixed random features;
* ``'efficientnet_lite0'``: the first ``encoder_blocks`` blocks of the public
  ImageNet EfficientNet-Lite0 weights (a small pretrained model the client holds
  and runs locally, as BlackVIP's clients run a public self-supervised encoder),
  average-pooled to ``h0 x h0`` and normalised per position over channels
  (``C`` = the trunk's channels, 80 for 8 blocks).

A learned "trigger" ``[h0, h0, trigger_channels]`` is concatenated, and transposed
convolutions (kernel 2, stride 2, GELU between) decode it to a ``[S, S, 3]`` prompt,
scaled by ``epsilon``, with no output activation. No batch statistics are used, so a
prompt never depends on its batch-mates (as BlackVIP's train-mode BatchNorm makes it). With
the defaults at S = 64 the decoder has 8,672 parameters with the random encoder.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from fedbbpt_jax.prompts.base import PromptGenerator
from fedbbpt_jax.prompts.canvas import region_mask
from fedbbpt_jax.prompts.encoders import ENCODERS, EncoderOptions


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
                            encoder: str = "random", encoder_channels: int = 8,
                            encoder_blocks: int = 8, trigger_channels: int = 8,
                            encoder_seed: int = 0,
                            encoder_weights: str | None = None) -> PromptGenerator:
  """Builds the coordinator prompt generator (see module docstring)."""
  num_blocks = len(widths) + 1
  if canvas_size % 2 ** num_blocks:
    raise ValueError(f"canvas_size={canvas_size} must be divisible by 2**{num_blocks} "
                     f"for a coordinator with {num_blocks} upsampling blocks")
  h0 = canvas_size // 2 ** num_blocks
  features, encoder_channels = ENCODERS.get(encoder, "prompt.encoder")(
      canvas_size, h0, EncoderOptions(channels=encoder_channels, seed=encoder_seed,
                                      blocks=encoder_blocks, weights_path=encoder_weights))
  decoder = Decoder(out_size=canvas_size, widths=tuple(widths), trigger_channels=trigger_channels)
  mask = region_mask(canvas_size, image_size, region)

  def init(key):
    z = jnp.zeros((1, h0, h0, encoder_channels), jnp.float32)
    return decoder.init(key, z)["params"]

  def apply(params, z):
    return epsilon * decoder.apply({"params": params}, z) * mask

  return PromptGenerator(name="coordinator", init=init, features=features, apply=apply)
