"""Input-dependent frame prompt: k frame patterns mixed per image by a feature gate.

``prompt(x) = upsample(sum_j g_j(x) P_j) * mask``, ``g(x) = softmax(f(x) W)``, where
``f(x)`` is a frozen client-side encoder's globally pooled feature vector, centred on
the clients' mean feature and normalised over channels (``prompt.encoder``: the
pretrained EfficientNet-Lite0 trunk, or fixed random convolutions for the ablation),
``P_j`` are ``k`` frame patterns ``[r, r, 3]`` (zeros at init, so training starts from
zero-shot) and ``W`` is a ``[C, k]`` gate drawn
``N(0, gate_init^2 / C)`` so that the initial gate logits have std ``gate_init``.

Why this shape: a zero-order estimate's variance grows with the number of trained
floats, so a BlackVIP decoder (~9-18k floats) learns slowly at the demo's query
budget. Here the encoder routes images to patterns (similar garments share one), and
the trained floats are ``k`` frames plus a small gate: ``k 3 r^2 + C k`` (1,088 for
k = 4, r = 8 and the 80-channel trunk), close to the frame prompt's 192 per pattern.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from fedbbpt_jax.prompts.base import PromptGenerator
from fedbbpt_jax.prompts.canvas import region_mask
from fedbbpt_jax.prompts.encoders import ENCODERS, EncoderOptions, channel_normalized


def make_frame_mixture_prompt(canvas_size: int, image_size: int, *, resolution: int = 8,
                              num_patterns: int = 4, epsilon: float = 1.0,
                              region: str = "frame", encoder: str = "efficientnet_lite0",
                              encoder_blocks: int = 8, encoder_channels: int = 8,
                              encoder_seed: int = 0, gate_init: float = 2.0,
                              encoder_weights: str | None = None,
                              feature_center: Any = None) -> PromptGenerator:
  """Builds the gated frame-mixture prompt (see the module docstring).

  Args:
    canvas_size: side of the black box's input.
    image_size: side of the centred image window.
    resolution: side ``r`` of each pattern.
    num_patterns: ``k`` patterns.
    epsilon: prompt scale in pixel units.
    region: ``'frame'`` or ``'full'``.
    encoder: ``'efficientnet_lite0'`` (pretrained trunk) or ``'random'``.
    encoder_blocks: trunk blocks of the pretrained encoder.
    encoder_channels: channels of the random encoder.
    encoder_seed: seed of the random encoder's weights.
    gate_init: std of the initial gate logits.
    encoder_weights: EfficientNet-Lite0 checkpoint (default: the packaged one).
    feature_center: ``[C]`` subtracted from every feature vector (the clients' mean
      feature, see ``tasks/image/build.py``); without it the features' common
      component gives most images the same gate.
  """
  if resolution < 1 or num_patterns < 1:
    raise ValueError(f"resolution={resolution} and num_patterns={num_patterns} must be >= 1")
  # Every encoder's map is pooled to one vector; the random convolutions see a 16 x 16
  # resize of the canvas for a 4 x 4 map (asked at 1 x 1 they would see only 4 x 4 pixels).
  fmap, channels = ENCODERS.get(encoder, "prompt.encoder")(
      canvas_size, 4 if encoder == "random" else 1,
      EncoderOptions(channels=encoder_channels, seed=encoder_seed, blocks=encoder_blocks,
                     weights_path=encoder_weights))
  mask = region_mask(canvas_size, image_size, region)

  def init(key):
    gate = jax.random.normal(key, (channels, num_patterns)) * gate_init / jnp.sqrt(channels)
    return {"patterns": jnp.zeros((num_patterns, resolution, resolution, 3), jnp.float32),
            "gate": gate}

  center = 0.0 if feature_center is None else jnp.asarray(feature_center, jnp.float32)

  def features(canvas_images):
    pooled = channel_normalized(jnp.mean(fmap(canvas_images), axis=(1, 2)))
    return channel_normalized(pooled - center)

  def apply(params, z):
    weights = jax.nn.softmax(z @ params["gate"], axis=-1)
    mixed = jnp.einsum("bk,khwc->bhwc", weights, params["patterns"])
    up = jax.image.resize(mixed, (mixed.shape[0], canvas_size, canvas_size, 3),
                          method="linear")
    return epsilon * up * mask

  return PromptGenerator(name="frame_mixture", init=init, features=features, apply=apply)
