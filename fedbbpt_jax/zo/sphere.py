"""Uniform-sphere smoothing estimator (BAR's estimator; docs/algorithms.md, "Smoothing estimators").

With ``D`` directions ``v_d`` uniform on the unit sphere of ``R^n`` (``n`` = number of
parameters) and radius ``mu_t`` (the perturbation size of ``HParams``), one-sided with
the current point as baseline (``D + 1`` candidates, the first is ``w`` itself)::

    g = n / (D mu) * sum_d (L(w + mu v_d) - L(w)) v_d

``E[n v v^T] = I`` and the odd moments of ``v`` vanish, so ``g`` is unbiased for the
gradient of a quadratic (and for the gradient of the ball-smoothed loss in general).
Losses and their differences are computed in float32: at perturbation sizes near 0.01 their
difference is close to half-precision rounding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from fedbbpt_jax.zo import base
from fedbbpt_jax.zo.hparams import HParams


@struct.dataclass
class SphereState:
  step: jnp.ndarray        # global step t (int32, 1-based) of the next tell
  directions: jnp.ndarray  # [D, n] unit vectors of the last ask


def unit_sphere(key: jax.Array, shape: tuple[int, ...]) -> jnp.ndarray:
  """Draws vectors uniform on the unit sphere along the last axis of ``shape``."""
  u = jax.random.normal(key, shape, jnp.float32)
  return u / jnp.linalg.norm(u, axis=-1, keepdims=True)


def make_sphere(num_directions: int) -> base.Estimator:
  """Builds the one-sided uniform-sphere estimator with ``num_directions`` directions."""
  d = int(num_directions)
  if d < 1:
    raise ValueError(f"num_directions must be >= 1, got {num_directions}")

  def init(params, step):
    flat, _ = base.flatten(params)
    return SphereState(step=jnp.asarray(step, jnp.int32),
                       directions=jnp.zeros((d,) + flat.shape, jnp.float32))

  def ask(key, params, state, hp: HParams):
    flat, unravel = base.flatten(params)
    v = unit_sphere(key, (d,) + flat.shape)
    mu = hp.perturbation_size(state.step)
    flat_cands = jnp.concatenate([flat[None], flat + mu * v], axis=0)
    return base.stack_candidates(flat_cands, unravel), state.replace(directions=v)

  def tell(params, candidates, losses, state, hp: HParams):
    del candidates
    flat, unravel = base.flatten(params)
    losses = losses.astype(jnp.float32)
    mu = hp.perturbation_size(state.step)
    coeffs = (losses[1:] - losses[0]) / mu
    g = flat.size * (coeffs @ state.directions) / d
    stats = base.loss_stats(losses)
    stats["grad_norm"] = jnp.linalg.norm(g)
    return unravel(g), state.replace(step=state.step + 1), stats

  return base.Estimator(name="sphere", num_candidates=d + 1, init=init, ask=ask, tell=tell)
