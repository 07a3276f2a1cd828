"""Visual reprogramming geometry: put a small image on the model's canvas, add a prompt.

Pixels are floats in [0, 1]; the black box normalises them itself, as an image API does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def window_bounds(canvas_size: int, image_size: int) -> tuple[int, int]:
  """Returns ``(start, stop)`` of the centred image window along each axis."""
  if not 0 < image_size <= canvas_size:
    raise ValueError(f"image_size={image_size} must be in (0, canvas_size={canvas_size}]")
  start = (canvas_size - image_size) // 2
  return start, start + image_size


def place_on_canvas(images: jnp.ndarray, canvas_size: int, image_size: int,
                    background: float = 0.0) -> jnp.ndarray:
  """Resizes images and centres them on a canvas.

  Args:
    images: ``[B, h, w]`` grayscale or ``[B, h, w, C]`` images, uint8 (0..255) or float
      in [0, 1].
    canvas_size: side of the square canvas (the black box's input resolution).
    image_size: side the image is resized to (bilinear) before it is centred.
    background: value of the canvas outside the image window.

  Returns:
    ``[B, canvas_size, canvas_size, 3]`` float32 in [0, 1].
  """
  x = images.astype(jnp.float32)
  if jnp.issubdtype(images.dtype, jnp.integer):
    x = x / 255.0
  if x.ndim == 3:
    x = x[..., None]
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  b = x.shape[0]
  x = jax.image.resize(x, (b, image_size, image_size, 3), method="linear")
  x = jnp.clip(x, 0.0, 1.0)
  start, _ = window_bounds(canvas_size, image_size)
  pad = ((0, 0), (start, canvas_size - image_size - start),
         (start, canvas_size - image_size - start), (0, 0))
  return jnp.pad(x, pad, constant_values=background)


def region_mask(canvas_size: int, image_size: int, region: str) -> jnp.ndarray:
  """Returns a ``[S, S, 1]`` mask of where a prompt may act.

  Args:
    region: ``'frame'`` (outside the image window only) or ``'full'`` (everywhere).
  """
  if region == "full":
    return jnp.ones((canvas_size, canvas_size, 1), jnp.float32)
  if region != "frame":
    raise ValueError(f"prompt region must be 'frame' or 'full', got {region!r}")
  start, stop = window_bounds(canvas_size, image_size)
  inside = jnp.zeros((canvas_size, canvas_size), bool).at[start:stop, start:stop].set(True)
  return (~inside).astype(jnp.float32)[..., None]


def apply_prompt(canvas_images: jnp.ndarray, delta: jnp.ndarray) -> jnp.ndarray:
  """Adds a prompt (broadcast over the batch) and clips to the valid pixel range."""
  return jnp.clip(canvas_images + delta, 0.0, 1.0)
