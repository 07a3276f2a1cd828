"""CMA-ES (evosax 0.3.2) under the ask/tell contract: the search distribution owns the step.

CMA-ES keeps a Gaussian search distribution ``N(m, sigma^2 C)``; ``ask`` samples the
population (``num_candidates = population size = num_directions``), ``tell`` ranks the
losses and moves ``m``, ``sigma``, ``C`` and the evolution paths (evosax's standard
rules, ``c_mean = 1``). The mean is the method's iterate, so the estimator sets
``sets_params=True``: ``tell`` returns the new mean as the next parameters, and
``make_local_update`` adopts it as it is (no client optimizer, no ``lr_t``). This is
exact: ``unravel(mean)`` is the parameter point, with no ``(p - m) / lr_t`` round trip.

Per round the state restarts (``init(params, step)``): mean = the global parameters,
``sigma`` = ``HParams.perturbation_size(step)`` of the round's first step (set at the
first ``ask``, as ``init`` has no hyper-parameters), ``C = I`` and zero paths; within
the round the distribution adapts over the local steps. ``ask`` re-centres the mean on
the parameters it is given, which is the identity unless a projection moved them.

Memory is ``O(P^2)`` and every ``ask`` runs an ``O(P^3)`` eigendecomposition: use it
for prompts of up to a few thousand parameters (``open_es``/``pgpe`` scale linearly).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
from flax import struct

from fedbbpt_jax.zo import base
from fedbbpt_jax.zo.hparams import HParams

if TYPE_CHECKING:  # only for the annotations: importing evosax starts JAX's backend
  import evosax

# evosax's ``tell`` takes a key for its metrics only; the distribution update is deterministic.
TELL_KEY_SEED = 0


@functools.lru_cache(maxsize=None)
def cma_strategy(num_dims: int, population_size: int) -> "evosax.algorithms.CMA_ES":
  """The evosax CMA-ES over flat ``float32[num_dims]`` solutions, one per shape.

  Cached because evosax jits its methods with ``static_argnames=('self',)``: a new
  instance would retrace. Built outside any trace so no tracer leaks into it.
  evosax is imported here, not at module import: importing it starts JAX's backend,
  which must wait until the CPU device count is set (``parallel.cpu_devices``).
  """
  from evosax.algorithms import CMA_ES  # pylint: disable=import-outside-toplevel
  with jax.ensure_compile_time_eval():
    return CMA_ES(population_size=population_size,
                  solution=jnp.zeros((num_dims,), jnp.float32))


def strong_types(tree):
  """``tree`` with every weakly typed leaf (evosax's ``0``, ``inf``, ``nan`` fills) made
  strongly typed, so that a state's signature does not change after its first update
  (which would make a jitted round compile twice)."""
  return jax.tree.map(lambda a: jax.lax.convert_element_type(a, jnp.asarray(a).dtype), tree)


def cma_start(strategy: "evosax.algorithms.CMA_ES", mean: jnp.ndarray, std: jnp.ndarray,
              covariance: jnp.ndarray | None = None):
  """A fresh evosax CMA-ES state at ``mean`` with step size ``std``.

  Evolution paths are zero and the generation counter 0; ``covariance`` (default
  ``I``) is inherited as it is, like pycma's light copy of a distribution.
  """
  state = strategy.init(jax.random.key(TELL_KEY_SEED), mean, strategy.default_params)
  state = state.replace(std=jnp.asarray(std, jnp.float32))
  if covariance is not None:
    state = state.replace(C=covariance)
  return strong_types(state)


def tell_key() -> jax.Array:
  """The fixed key handed to evosax's ``tell`` (used by its metrics only)."""
  return jax.random.key(TELL_KEY_SEED)


@struct.dataclass
class CMAESState:
  step: jnp.ndarray     # global step t (int32, 1-based) of the next tell
  started: jnp.ndarray  # False until the first ask has set sigma from HParams
  search: struct.PyTreeNode  # evosax CMA-ES state (mean, std, paths, C, B, D, ...)


def make_cma_es(num_directions: int) -> base.Estimator:
  """Builds CMA-ES with population size ``num_directions`` (at least 2)."""
  pop = int(num_directions)
  if pop < 2:
    raise ValueError(f"cma_es needs a population (num_directions) >= 2, got {num_directions}")

  def init(params, step):
    flat, _ = base.flatten(params)
    strategy = cma_strategy(flat.size, pop)
    return CMAESState(step=jnp.asarray(step, jnp.int32), started=jnp.asarray(False),
                      search=cma_start(strategy, flat, 1.0))

  def ask(key, params, state, hp: HParams):
    flat, unravel = base.flatten(params)
    strategy = cma_strategy(flat.size, pop)
    std = jnp.where(state.started, state.search.std, hp.perturbation_size(state.step))
    search = state.search.replace(mean=flat, std=std)
    population, search = strategy.ask(key, search, strategy.default_params)
    return (base.stack_candidates(population, unravel),
            state.replace(started=jnp.asarray(True), search=search))

  def tell(params, candidates, losses, state, hp: HParams):
    del hp
    flat, unravel = base.flatten(params)
    strategy = cma_strategy(flat.size, pop)
    losses = losses.astype(jnp.float32)
    search, _ = strategy.tell(tell_key(), base.flatten_candidates(candidates), losses,
                              state.search, strategy.default_params)
    stats = base.loss_stats(losses)
    stats["grad_norm"] = jnp.linalg.norm(search.mean - flat)  # length of the mean's step
    stats["sigma"] = search.std
    return unravel(search.mean), state.replace(step=state.step + 1, search=search), stats

  return base.Estimator(name="cma_es", num_candidates=pop, init=init, ask=ask, tell=tell,
                        sets_params=True)
