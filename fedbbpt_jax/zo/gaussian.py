"""Multi-direction Gaussian smoothing estimators (docs/algorithms.md, "Smoothing estimators").

With D directions ``u_d ~ N(0, I)`` and radius ``sigma_t``:

* one-sided with baseline (D + 1 candidates, the first is ``w`` itself)::

    g = 1/(D sigma) * sum_d (L(w + sigma u_d) - L(w)) u_d

* antithetic (2D candidates)::

    g = 1/(2 D sigma) * sum_d (L(w + sigma u_d) - L(w - sigma u_d)) u_d

Both are unbiased for the gradient of a quadratic; antithetic pairs cancel the
even part of the loss and so have lower variance.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from fedbbpt_jax.zo import base
from fedbbpt_jax.zo.hparams import HParams


@struct.dataclass
class GaussianState:
  step: jnp.ndarray        # global step t (int32, 1-based) of the next tell
  directions: jnp.ndarray  # [D, P] of the last ask


def make_gaussian(num_directions: int, *, antithetic: bool) -> base.Estimator:
  """Builds the antithetic or the one-sided (with baseline) Gaussian estimator."""
  d = int(num_directions)
  if d < 1:
    raise ValueError(f"num_directions must be >= 1, got {num_directions}")

  def init(params, step):
    flat, _ = base.flatten(params)
    return GaussianState(step=jnp.asarray(step, jnp.int32),
                         directions=jnp.zeros((d,) + flat.shape, jnp.float32))

  def ask(key, params, state, hp: HParams):
    flat, unravel = base.flatten(params)
    u = jax.random.normal(key, (d,) + flat.shape, jnp.float32)
    s = hp.perturbation_size(state.step)
    if antithetic:
      flat_cands = jnp.concatenate([flat + s * u, flat - s * u], axis=0)
    else:
      flat_cands = jnp.concatenate([flat[None], flat + s * u], axis=0)
    return base.stack_candidates(flat_cands, unravel), state.replace(directions=u)

  def tell(params, candidates, losses, state, hp: HParams):
    del candidates
    _, unravel = base.flatten(params)
    losses = losses.astype(jnp.float32)
    s = hp.perturbation_size(state.step)
    if antithetic:
      coeffs = (losses[:d] - losses[d:]) / (2.0 * s)
    else:
      coeffs = (losses[1:] - losses[0]) / s
    g = coeffs @ state.directions / d
    stats = base.loss_stats(losses)
    stats["grad_norm"] = jnp.linalg.norm(g)
    return unravel(g), state.replace(step=state.step + 1), stats

  name = "gaussian_antithetic" if antithetic else "gaussian"
  return base.Estimator(name=name, num_candidates=(2 * d if antithetic else d + 1),
                        init=init, ask=ask, tell=tell)
