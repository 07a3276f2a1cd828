"""Intrinsic-dimensional clipping of a zero-order gradient estimate (ZIP, Park et al.,
ICLR 2025): the estimate is scaled down to norm ``sqrt(n)`` whenever its norm is at least
that, ``n`` the number of trained parameters::

    g <- g * min(1, sqrt(n) / ||g||)

The threshold comes from the dimension, not from tuning: a perturbation direction with
unit-scale entries has norm about ``sqrt(n)``, and an SPSA estimate divides the loss
difference by such entries, so its norm grows with the loss scale and the noise of the
difference; clipping bounds the step a single noisy estimate can take. ``clipped``
wraps any gradient estimator's ``tell`` (the candidates, the state and the statistics are
the estimator's own); ``stats['clipped']`` is 1.0 where the estimate was scaled.
"""

from __future__ import annotations

import jax.numpy as jnp

from fedbbpt_jax.zo import base


def clip_to_sqrt_dim(flat_grad: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
  """``(clipped flat estimate, whether it was scaled)`` with threshold ``sqrt(size)``."""
  threshold = jnp.sqrt(jnp.asarray(flat_grad.size, jnp.float32))
  norm = jnp.linalg.norm(flat_grad)
  scaled = norm >= threshold
  factor = jnp.where(scaled, threshold / jnp.where(norm > 0, norm, 1.0), 1.0)
  return flat_grad * factor, scaled


def clipped(estimator: base.Estimator, name: str) -> base.Estimator:
  """``estimator`` whose gradient estimates are clipped to norm ``sqrt(n)``."""
  if estimator.sets_params:
    raise ValueError(f"{estimator.name!r} sets the parameters itself; only a gradient "
                     "estimator's estimate can be clipped")

  def tell(params, candidates, losses, state, hp):
    grad, state, stats = estimator.tell(params, candidates, losses, state, hp)
    flat, unravel = base.flatten(grad)
    flat, scaled = clip_to_sqrt_dim(flat)
    return unravel(flat), state, {**stats, "clipped": scaled.astype(jnp.float32)}

  return estimator._replace(name=name, tell=tell)
