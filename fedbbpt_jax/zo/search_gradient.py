"""Search-gradient evolution strategies (evosax 0.3.2): OpenAI-ES and PGPE as estimators.

Both sample an antithetic Gaussian population around a mean and turn the
fitness-shaped losses into a search gradient (docs/algorithms.md, "Search gradients"; evosax
minimises):

* ``open_es``: ``eps_i ~ N(0, I)`` paired ``+-``, ``x_i = w + sigma eps_i``,
  ``g = 1/(N sigma) sum_i f_i eps_i`` with centred ranks ``f_i in [-0.5, 0.5]``;
  ``sigma = HParams.perturbation_size(t)`` at every step.
* ``pgpe``: ``x_i = w +- sigma * z_i`` with a per-coordinate ``sigma`` that PGPE adapts
  (evosax's ``std_lr`` 0.1, at most 20 % per step) from its initial value
  ``perturbation_size`` of the round's first step; ``g = sum_{i<=N/2} (f_i+ - f_i-)
  (x_i+ - w) / N`` with centred ranks.

``num_candidates`` = population size ``N`` = ``num_directions`` (even). Rank shaping
makes ``g`` invariant to the loss's scale (it is a search gradient, not an unbiased
estimate of the loss gradient), so the client step size ``lr`` is tuned per method.

How they fit ask/tell: the ES's own optimizer is replaced by a transformation that
records the search gradient in the evosax state and leaves the mean where it is;
``tell`` returns that gradient, the client optimizer (``sgd``/``adam``, ``-lr_t``) moves
the parameters as for any estimator, and the next ``ask`` re-centres the ES on them.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax
from flax import struct

from fedbbpt_jax.zo import base
from fedbbpt_jax.zo.cma_es import strong_types, tell_key
from fedbbpt_jax.zo.hparams import HParams

SEARCH_GRADIENT_FAMILIES = ("open_es", "pgpe")


def recorded_gradient() -> optax.GradientTransformation:
  """An optax transformation whose state is the last gradient and whose update is zero."""

  def init(params):
    return jnp.zeros_like(params)

  def update(updates, state, params=None):
    del state, params
    return jnp.zeros_like(updates), updates

  return optax.GradientTransformation(init, update)


@functools.lru_cache(maxsize=None)
def search_strategy(family: str, num_dims: int, population_size: int):
  """The evosax strategy of ``family`` over flat ``float32[num_dims]`` solutions (cached).

  evosax is imported here: importing it starts JAX's backend (see ``cma_es.cma_strategy``).
  """
  from evosax.algorithms import PGPE, Open_ES  # pylint: disable=import-outside-toplevel
  with jax.ensure_compile_time_eval():
    solution = jnp.zeros((num_dims,), jnp.float32)
    if family == "open_es":
      return Open_ES(population_size=population_size, solution=solution,
                     use_antithetic_sampling=True, optimizer=recorded_gradient())
    if family == "pgpe":
      return PGPE(population_size=population_size, solution=solution,
                  optimizer=recorded_gradient())
  raise ValueError(f"unknown search-gradient family {family!r}; "
                   f"choose one of {list(SEARCH_GRADIENT_FAMILIES)}")


@struct.dataclass
class SearchGradientState:
  step: jnp.ndarray     # global step t (int32, 1-based) of the next tell
  started: jnp.ndarray  # False until the first ask has set sigma from HParams
  search: struct.PyTreeNode  # evosax state; ``opt_state`` holds the last search gradient


def make_search_gradient(family: str, num_directions: int) -> base.Estimator:
  """Builds ``open_es`` or ``pgpe`` with population ``num_directions`` (even, >= 2)."""
  pop = int(num_directions)
  if pop < 2 or pop % 2:
    raise ValueError(f"{family} samples antithetic pairs: num_directions must be even and "
                     f">= 2, got {num_directions}")
  if family not in SEARCH_GRADIENT_FAMILIES:
    raise ValueError(f"unknown search-gradient family {family!r}; "
                     f"choose one of {list(SEARCH_GRADIENT_FAMILIES)}")

  def init(params, step):
    flat, _ = base.flatten(params)
    strategy = search_strategy(family, flat.size, pop)
    search = strong_types(strategy.init(tell_key(), flat, strategy.default_params))
    return SearchGradientState(step=jnp.asarray(step, jnp.int32), started=jnp.asarray(False),
                               search=search)

  def ask(key, params, state, hp: HParams):
    flat, unravel = base.flatten(params)
    strategy = search_strategy(family, flat.size, pop)
    sigma_t = hp.perturbation_size(state.step)
    if family == "open_es":
      std = jnp.broadcast_to(sigma_t, state.search.std.shape)
    else:  # PGPE adapts its per-coordinate std within the round
      std = jnp.where(state.started, state.search.std, sigma_t)
    search = state.search.replace(mean=flat, std=std.astype(jnp.float32))
    population, search = strategy.ask(key, search, strategy.default_params)
    return (base.stack_candidates(population, unravel),
            state.replace(started=jnp.asarray(True), search=search))

  def tell(params, candidates, losses, state, hp: HParams):
    del hp
    flat, unravel = base.flatten(params)
    strategy = search_strategy(family, flat.size, pop)
    losses = losses.astype(jnp.float32)
    std = state.search.std
    search, _ = strategy.tell(tell_key(), base.flatten_candidates(candidates), losses,
                              state.search, strategy.default_params)
    if family == "open_es":  # Open_ES resets std from its schedule; the next ask sets it
      search = search.replace(std=std)
    g = search.opt_state
    stats = base.loss_stats(losses)
    stats["grad_norm"] = jnp.linalg.norm(g)
    return unravel(g), state.replace(step=state.step + 1, search=search), stats

  return base.Estimator(name=family, num_candidates=pop, init=init, ask=ask, tell=tell)
