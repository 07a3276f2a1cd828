"""Random-coordinate central finite differences (docs/algorithms.md, "Smoothing estimators").

Each step draws ``D`` distinct coordinates ``S`` uniformly among the ``n`` parameters
(with replacement only when ``D > n``) and evaluates ``w +- mu e_j`` for ``j in S``
(``2 D`` candidates)::

    g = n / D * sum_{j in S} (L(w + mu e_j) - L(w - mu e_j)) / (2 mu) e_j

Every coordinate is in ``S`` with probability ``D / n``, so the ``n / D`` factor makes
``g`` unbiased for the gradient of a quadratic (the central difference is exact there).
With ``D = n`` it is the full deterministic coordinate-wise estimate (``2n`` queries).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from fedbbpt_jax.zo import base
from fedbbpt_jax.zo.hparams import HParams


@struct.dataclass
class CoordinateState:
  step: jnp.ndarray         # global step t (int32, 1-based) of the next tell
  coordinates: jnp.ndarray  # [D] int32 coordinates of the last ask


def make_coordinate(num_directions: int) -> base.Estimator:
  """Builds the estimator that differentiates ``num_directions`` random coordinates."""
  d = int(num_directions)
  if d < 1:
    raise ValueError(f"num_directions must be >= 1, got {num_directions}")

  def init(params, step):
    del params
    return CoordinateState(step=jnp.asarray(step, jnp.int32),
                           coordinates=jnp.zeros((d,), jnp.int32))

  def ask(key, params, state, hp: HParams):
    flat, unravel = base.flatten(params)
    n = flat.size
    coords = jax.random.choice(key, n, (d,), replace=d > n).astype(jnp.int32)
    basis = jax.nn.one_hot(coords, n, dtype=jnp.float32)
    mu = hp.perturbation_size(state.step)
    flat_cands = jnp.concatenate([flat + mu * basis, flat - mu * basis], axis=0)
    return base.stack_candidates(flat_cands, unravel), state.replace(coordinates=coords)

  def tell(params, candidates, losses, state, hp: HParams):
    del candidates
    flat, unravel = base.flatten(params)
    losses = losses.astype(jnp.float32)
    mu = hp.perturbation_size(state.step)
    diffs = (losses[:d] - losses[d:]) / (2.0 * mu)
    g = jnp.zeros_like(flat).at[state.coordinates].add(diffs) * (flat.size / d)
    stats = base.loss_stats(losses)
    stats["grad_norm"] = jnp.linalg.norm(g)
    return unravel(g), state.replace(step=state.step + 1), stats

  return base.Estimator(name="coordinate", num_candidates=2 * d, init=init, ask=ask, tell=tell)
