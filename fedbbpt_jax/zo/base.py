"""The ask/tell contract every zero-order estimator follows.

One step of any estimator is::

    candidates, state = est.ask(key, params, state, hparams)    # stacked pytree
    losses = batched_objective(candidates)                      # ONE black-box call
    grad, state, stats = est.tell(params, candidates, losses, state, hparams)

``grad`` estimates the gradient of the loss (descent direction = -grad) and can go
through any optax transformation. Estimators work on the flat vector of the
parameter pytree internally (``ravel_pytree``) and hand stacked pytrees to callers.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from fedbbpt_jax.zo.hparams import HParams

PyTree = Any


class Estimator(NamedTuple):
  """A zero-order gradient estimator under the ask/tell contract.

  Attributes:
    name: registry name.
    num_candidates: number of parameter points evaluated per step (static).
    init: ``init(params, step) -> state``; ``step`` is the 1-based global step of
      the first step that will use this state.
    ask: ``ask(key, params, state, hparams) -> (candidates, state)``; candidates is
      ``params`` stacked ``num_candidates`` times along a new leading axis.
    tell: ``tell(params, candidates, losses, state, hparams) -> (grad, state, stats)``;
      ``losses`` has shape ``[num_candidates]``; advances the state's step by one.
    sets_params: ``False`` (gradient estimators): ``tell`` returns a gradient estimate
      that the caller turns into a step (client optimizer, ``-lr_t``). ``True``
      (search-distribution methods that own their step, e.g. CMA-ES): ``tell``
      returns the next parameter point itself (the distribution mean), which the
      caller adopts as it is, bypassing the client optimizer and ``lr_t``.
  """

  name: str
  num_candidates: int
  init: Callable[[PyTree, jnp.ndarray], Any]
  ask: Callable[[jax.Array, PyTree, Any, HParams], tuple[PyTree, Any]]
  tell: Callable[[PyTree, PyTree, jnp.ndarray, Any, HParams], tuple[PyTree, Any, dict]]
  sets_params: bool = False


def flatten(params: PyTree) -> tuple[jnp.ndarray, Callable[[jnp.ndarray], PyTree]]:
  """Returns the float32 flat vector of ``params`` and the inverse map."""
  flat, unravel = ravel_pytree(params)
  return flat.astype(jnp.float32), unravel


def stack_candidates(flat_candidates: jnp.ndarray,
                     unravel: Callable[[jnp.ndarray], PyTree]) -> PyTree:
  """Turns ``[num_candidates, P]`` flat vectors into a stacked parameter pytree."""
  return jax.vmap(unravel)(flat_candidates)


def flatten_candidates(candidates: PyTree) -> jnp.ndarray:
  """Turns a stacked parameter pytree into ``[num_candidates, P]`` float32 flat vectors."""
  return jax.vmap(lambda c: flatten(c)[0])(candidates)


def loss_stats(losses: jnp.ndarray) -> dict[str, jnp.ndarray]:
  """Statistics every estimator reports: mean and spread of the candidate losses."""
  return {"loss": jnp.mean(losses), "loss_spread": jnp.max(losses) - jnp.min(losses)}
