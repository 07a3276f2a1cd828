"""The frame prompt reparameterised in a small intrinsic dimension with a low-rank factor
(ZIP's idea, Park et al., ICLR 2025, on the image track's frame).

The frame's pattern has one row per colour channel, ``[3, r^2]`` (``r`` =
``prompt.frame_resolution``). Each row is a fixed random projection of a ``k``-vector,
``k = intrinsic_dim / 3``, and the three ``k``-vectors are the rows of a low-rank matrix
with a shared offset::

    R = U diag(s) V^T + 1 shared^T        U [3, rank], s [rank], V [k, rank], shared [k]
    pattern[c] = R[c] @ A_c               A_c [k, r^2], entries N(0, 1/k), fixed

The trained parameters are ``U, s, V, shared`` (``3 rank + rank + k rank + k``: 56 for the
defaults instead of the frame's ``3 r^2``); ``U`` and ``shared`` start at 0, so training
starts from the zero-shot canvas, ``s`` at 1 and ``V`` from a standard normal draw (the
prompt's key), as ZIP initialises them. The projection is drawn once from a fixed seed
(``projection_seed``), the same for every client and run. ZIP projects with Fastfood
transforms into a CLIP text prompt; here a dense Gaussian matrix (``k x r^2`` is small)
into the frame. The pattern is then upsampled and masked exactly as the frame's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.prompts.base import PromptGenerator
from fedbbpt_jax.prompts.canvas import region_mask

CHANNELS = 3


def make_intrinsic_frame_prompt(canvas_size: int, image_size: int, resolution: int = 16,
                                intrinsic_dim: int = 48, rank: int = 2, epsilon: float = 1.0,
                                region: str = "frame",
                                projection_seed: int = 0) -> PromptGenerator:
  """Builds the intrinsic-dimension frame prompt (see the module docstring).

  Args:
    canvas_size: side of the black box's input.
    image_size: side of the centred image window.
    resolution: side ``r`` of the frame pattern the projection fills.
    intrinsic_dim: ``3 k``, the dimension of the low-rank matrix's rows together.
    rank: rank of ``U diag(s) V^T``.
    epsilon: scale of the pattern in pixel units.
    region: ``'frame'`` or ``'full'`` (see ``canvas.region_mask``).
    projection_seed: seed of the fixed projections ``A_c``.
  """
  if resolution < 1 or rank < 1 or intrinsic_dim < CHANNELS or intrinsic_dim % CHANNELS:
    raise ValueError(f"intrinsic frame: resolution={resolution} and rank={rank} must be >= 1 "
                     f"and intrinsic_dim={intrinsic_dim} a positive multiple of {CHANNELS}")
  k = intrinsic_dim // CHANNELS
  mask = region_mask(canvas_size, image_size, region)
  rng = np.random.default_rng(projection_seed)
  projection = jnp.asarray(rng.standard_normal((CHANNELS, k, resolution * resolution))
                           / np.sqrt(k), jnp.float32)

  def init(key):
    return {"U": jnp.zeros((CHANNELS, rank), jnp.float32),
            "s": jnp.ones((rank,), jnp.float32),
            "V": jax.random.normal(key, (k, rank), jnp.float32),
            "shared": jnp.zeros((k,), jnp.float32)}

  def features(canvas_images):
    del canvas_images
    return ()

  def pattern(params):
    rows = (params["U"] * params["s"]) @ params["V"].T + params["shared"][None]   # [3, k]
    flat = jnp.einsum("ck,ckp->cp", rows, projection)                             # [3, r^2]
    return flat.reshape(CHANNELS, resolution, resolution).transpose(1, 2, 0)

  def apply(params, z):
    del z
    up = jax.image.resize(pattern(params), (canvas_size, canvas_size, CHANNELS),
                          method="linear")
    return (epsilon * up * mask)[None]

  return PromptGenerator(name="intrinsic_frame", init=init, features=features, apply=apply)
