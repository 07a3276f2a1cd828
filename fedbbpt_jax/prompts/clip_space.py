"""CLIP's pixel normalisation and the range a prompted CLIP input may take.

CLIP reads ``(x - mean_c) / std_c`` of pixels ``x`` in [0, 1]. BlackVIP adds its prompt in
that normalised space and clamps channel ``c`` to ``[(0 - mean_c)/std_c, (1 - mean_c)/std_c]``
(``clip_clipping``), i.e. to the images of pixels 0 and 1. This project's images are pixels
in [0, 1] and every black box normalises them itself, so a prompt ``p`` in normalised units
is added here as the pixel delta ``std_c * p`` and the pixels are clipped to [0, 1]: since
normalisation is increasing and affine per channel,

    normalise(clip_[0,1](x + std * p)) == clamp_c(normalise(x) + p)

exactly in real arithmetic (float32 differs in the last bits). ``clip_clamp`` is BlackVIP's
clamp, kept for that check and for anyone working in normalised units.
"""

from __future__ import annotations

import jax.numpy as jnp

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_normalize(pixels: jnp.ndarray) -> jnp.ndarray:
  """``[..., 3]`` pixels in [0, 1] -> CLIP's normalised input."""
  return (pixels - jnp.asarray(CLIP_MEAN)) / jnp.asarray(CLIP_STD)


def clip_bounds() -> tuple[jnp.ndarray, jnp.ndarray]:
  """``(low [3], high [3])``: the normalised images of pixels 0 and 1 per channel."""
  mean, std = jnp.asarray(CLIP_MEAN), jnp.asarray(CLIP_STD)
  return (0.0 - mean) / std, (1.0 - mean) / std


def clip_clamp(normalized: jnp.ndarray) -> jnp.ndarray:
  """BlackVIP's ``clip_clipping``: clamps each channel of ``[..., 3]`` to ``clip_bounds``."""
  low, high = clip_bounds()
  return jnp.clip(normalized, low, high)


def pixel_delta(normalized_prompt: jnp.ndarray) -> jnp.ndarray:
  """A prompt in CLIP-normalised units ``[..., 3]`` as a pixel delta (``std_c * p``)."""
  return normalized_prompt * jnp.asarray(CLIP_STD)
