"""SPSA and SPSA-GC exactly as BlackVIP (Oh et al., CVPR 2023) runs them.

Per step with global step ``t``::

    c_t = c / t**gamma
    Delta_k[j] = s_j * u_j,  s_j = +-1,  u_j ~ U[0.5, 1)          k = 1..K
    g_k = (L(w + c_t Delta_k) - L(w - c_t Delta_k)) / (2 c_t) / Delta_k   (element-wise)
    g = mean_k g_k
    spsa-gc: m = g at a state's first step, else beta * m + g;   d = g + beta * m
    spsa:    d = g

``tell`` returns ``d``; the caller applies ``w <- w - a_t d`` (a_t from HParams).
Losses and their differences are computed in float32: at ``c_t`` near 0.01 their
difference is close to half-precision rounding (docs/algorithms.md, "Losses in float32").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from fedbbpt_jax.zo import base
from fedbbpt_jax.zo.hparams import HParams


@struct.dataclass
class SPSAState:
  step: jnp.ndarray          # global step t (int32, 1-based) of the next tell
  momentum: jnp.ndarray      # flat m
  has_momentum: jnp.ndarray  # False until the first tell of this state
  directions: jnp.ndarray    # [K, P] Delta of the last ask


def segmented_uniform(key: jax.Array, shape: tuple[int, ...]) -> jnp.ndarray:
  """Draws ``s * u`` with random sign ``s`` and ``u ~ U[0.5, 1)``."""
  k_sign, k_mag = jax.random.split(key)
  sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, shape), 1.0, -1.0)
  return sign * jax.random.uniform(k_mag, shape, minval=0.5, maxval=1.0)


def make_spsa(num_directions: int, *, gradient_correction: bool) -> base.Estimator:
  """Builds SPSA (``gradient_correction=False``) or SPSA-GC with K directions."""
  k = int(num_directions)
  if k < 1:
    raise ValueError(f"num_directions must be >= 1, got {num_directions}")

  def init(params, step):
    flat, _ = base.flatten(params)
    return SPSAState(step=jnp.asarray(step, jnp.int32), momentum=jnp.zeros_like(flat),
                     has_momentum=jnp.asarray(False),
                     directions=jnp.zeros((k,) + flat.shape, jnp.float32))

  def ask(key, params, state, hp: HParams):
    flat, unravel = base.flatten(params)
    deltas = segmented_uniform(key, (k,) + flat.shape)
    c_t = hp.perturbation_size(state.step)
    flat_cands = jnp.concatenate([flat + c_t * deltas, flat - c_t * deltas], axis=0)
    return base.stack_candidates(flat_cands, unravel), state.replace(directions=deltas)

  def tell(params, candidates, losses, state, hp: HParams):
    del candidates
    flat, unravel = base.flatten(params)
    losses = losses.astype(jnp.float32)
    c_t = hp.perturbation_size(state.step)
    diffs = (losses[:k] - losses[k:]) / (2.0 * c_t)
    g = jnp.mean(diffs[:, None] / state.directions, axis=0)
    if gradient_correction:
      m = jnp.where(state.has_momentum, hp.momentum * state.momentum + g, g)
      d = g + hp.momentum * m
    else:
      m, d = state.momentum, g
    new_state = state.replace(step=state.step + 1, momentum=m, has_momentum=jnp.asarray(True))
    stats = base.loss_stats(losses)
    stats["grad_norm"] = jnp.linalg.norm(g)
    return unravel(d), new_state, stats

  name = "spsa_gc" if gradient_correction else "spsa"
  return base.Estimator(name=name, num_candidates=2 * k, init=init, ask=ask, tell=tell)
