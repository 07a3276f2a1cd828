"""FedBPT (Sun et al., arXiv 2310.01467; docs/algorithms.md, "FedBPT"): federated CMA-ES.

The server keeps a global CMA-ES (evosax) over the flat prompt vector with
population ``m`` = cohort size, every client a parent (weights
``w_i ∝ ln(m + 1/2) - ln i``, all positive), and the local step size ``sigma_loc``.
One round:

1. **Downlink.** Each sampled client gets the global mean, ``sigma_sent`` and the
   covariance ``C`` (``sigma_sent = max(sigma_loc, floor)``, see below).
2. **Client c.** A light copy of the global distribution (same mean, sigma and ``C``;
   zero paths; evosax's default CMA-ES weights for ``lambda_loc`` = ``num_directions``)
   runs ``local_steps`` CMA-ES generations on minibatches, recording the step size
   ``sigma_{c,t}`` before each ``ask``; it then scores its final mean ``x_c`` on one more
   minibatch: the fitness ``f_c``.
3. **Uplink.** ``x_c``, ``f_c`` and ``{sigma_{c,t}}``.
4. **Server.** ``sigma_g = sqrt( sum_c sum_t sigma_{c,t}^2 / (m mu_loc) )`` with
   ``mu_loc = floor(lambda_loc / 2)``; the global sigma is set to ``sigma_g``, a discarded
   ``ask`` refreshes the eigendecomposition, and ``tell({x_c}, {f_c})`` is one CMA-ES
   generation on the fitness-ranked client means (mean, paths, sigma, ``C``).
5. **Next local sigma.** ``sigma_loc <- (sigma_after_tell / sigma_g) * sigma_loc``, which
   the global distribution then carries.

The reference floors the sigma it sends at 0.5 (at ``sigma_0 = 1``) and undoes the
floor on the next line (no floor in effect). Here the floor is applied as intended,
relative to the initial sigma: ``floor = sigma_floor_ratio * sigma_0`` on the sigma sent
(``sigma_loc`` itself is not floored, as in the reference); ``sigma_floor_ratio=0``
reproduces the reference exactly.

Queries per client and round: ``local_steps * lambda_loc + 1`` candidates on minibatches
of ``batch_size`` examples (the reference scores the client's whole set instead).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct

from fedbbpt_jax.core import ConfigError, get_field
from fedbbpt_jax.data.clients import ClientData
from fedbbpt_jax.federated.algorithms.algorithm import (Algorithm, AlgorithmContext, RoundCost,
                                                        make_algorithm, register_algorithm)
from fedbbpt_jax.federated.algorithms.client import minibatch, nonfinite_as_worst
from fedbbpt_jax.federated.simulated_faults.faults import refuse_faults
from fedbbpt_jax.federated.algorithms.fedbbpt import (cohort_selector, nonfinite_count,
                                                      weighted_train_loss)
from fedbbpt_jax.federated.algorithms.server import ServerState
from fedbbpt_jax.zo import HParams
from fedbbpt_jax.zo.base import flatten, stack_candidates
from fedbbpt_jax.zo.cma_es import cma_start, cma_strategy, tell_key

PyTree = Any
CandidateLosses = Callable[[PyTree, dict], jnp.ndarray]
SIGMA_FLOOR_RATIO = 0.5  # the reference's floor 0.5 at its initial sigma 1.0
FEDBPT_ESTIMATOR = "cma_es"


@struct.dataclass
class FedBPTState:
  """The server's search state (``ServerState.opt_state`` of FedBPT)."""

  search: struct.PyTreeNode   # global evosax CMA-ES state (mean, std, C, paths, ...)
  local_sigma: jnp.ndarray    # sigma_loc, before the floor


@struct.dataclass
class ClientStart:
  """What the server sends a client: the global distribution."""

  params: PyTree              # the global mean as a parameter pytree
  sigma: jnp.ndarray          # step size the client starts from
  covariance: jnp.ndarray     # [P, P]


@struct.dataclass
class FedBPTClientOutput:
  """What a client uploads."""

  mean: jnp.ndarray           # [P] final local mean x_c
  fitness: jnp.ndarray        # loss of x_c on one minibatch, f_c
  sigmas: jnp.ndarray         # [local_steps] sigma_{c,t} before each ask
  num_examples: jnp.ndarray
  metrics: dict


def local_parents(population_size: int) -> int:
  """``mu_loc``: the number of positive recombination weights, ``floor(lambda / 2)``."""
  return max(1, int(population_size) // 2)


def all_parent_params(strategy, population_size: int):
  """evosax CMA-ES params where all ``m`` candidates are parents, ``w_i ∝ ln(m+½) - ln i``.

  Every constant that depends on the weights (``mu_eff`` and the learning rates of
  the paths, sigma and ``C``) is recomputed with evosax's own equations.
  """
  m = int(population_size)
  n = strategy.num_dims
  n_sq = strategy.max_num_dims_sq
  raw = jnp.log(m + 0.5) - jnp.log(jnp.arange(1, m + 1, dtype=jnp.float32))
  weights = raw / jnp.sum(raw)
  mu_eff = 1.0 / jnp.sum(weights ** 2)
  c_c = (4 + mu_eff / n) / (n + 4 + 2 * mu_eff / n)
  c_1 = 2 / ((n_sq + 1.3) ** 2 + mu_eff)
  c_mu = jnp.minimum(1 - c_1 - 1e-8, 2 * (mu_eff + 1 / mu_eff - 2) / ((n_sq + 2) ** 2 + mu_eff))
  c_std = (mu_eff + 2) / (n + mu_eff + 5)
  d_std = 1 + 2 * jnp.maximum(0, jnp.sqrt((mu_eff - 1) / (n + 1)) - 1) + c_std
  return strategy.default_params.replace(weights=weights, mu_eff=mu_eff, c_c=c_c, c_1=c_1,
                                         c_mu=c_mu, c_std=c_std, d_std=d_std)


def global_sigma(sigmas: jnp.ndarray, population_size: int) -> jnp.ndarray:
  """``sigma_g = sqrt(sum_c sum_t sigma_{c,t}^2 / (m mu_loc))``; ``sigmas`` is ``[m, T]``."""
  m = sigmas.shape[0]
  return jnp.sqrt(jnp.sum(jnp.square(sigmas)) / (m * local_parents(population_size)))


def make_fedbpt_client(candidate_losses: CandidateLosses, population_size: int, num_steps: int,
                       batch_size: int) -> Callable[..., FedBPTClientOutput]:
  """Builds ``client(start, data, key, hparams, round_idx) -> FedBPTClientOutput``."""
  pop = int(population_size)

  def client(start: ClientStart, data: ClientData, key: jax.Array, hparams: HParams,
             round_idx: jnp.ndarray) -> FedBPTClientOutput:
    del hparams, round_idx
    flat, unravel = flatten(start.params)
    strategy = cma_strategy(flat.size, pop)
    es_params = strategy.default_params

    def step(search, k):
      k_batch, k_ask = jax.random.split(jax.random.fold_in(key, k))
      sigma = search.std
      population, search = strategy.ask(k_ask, search, es_params)
      losses = candidate_losses(stack_candidates(population, unravel),
                                minibatch(data, k_batch, batch_size))
      losses, nonfinite = nonfinite_as_worst(losses.astype(jnp.float32))
      search, _ = strategy.tell(tell_key(), population, losses, search, es_params)
      return search, {"sigma": sigma, "loss": jnp.mean(losses), "nonfinite": nonfinite}

    search = cma_start(strategy, flat, start.sigma, start.covariance)
    search, stats = jax.lax.scan(step, search, jnp.arange(num_steps))
    final = stack_candidates(search.mean[None], unravel)
    fitness = candidate_losses(final, minibatch(data, jax.random.fold_in(key, num_steps),
                                                batch_size))
    fitness, last_nonfinite = nonfinite_as_worst(fitness.astype(jnp.float32))
    fitness = fitness[0]
    metrics = {"train_loss": jnp.mean(stats["loss"]), "fitness": fitness,
               "nonfinite_candidates": jnp.sum(stats["nonfinite"]) + last_nonfinite}
    return FedBPTClientOutput(mean=search.mean, fitness=fitness,
                              sigmas=stats["sigma"],
                              num_examples=data.num_examples.astype(jnp.float32),
                              metrics=metrics)

  return client


def fedbpt_server_update(state: FedBPTState, client_means: jnp.ndarray,
                         fitnesses: jnp.ndarray, sigmas: jnp.ndarray, population_size: int,
                         key: jax.Array) -> FedBPTState:
  """Steps 4-5: ``sigma_g``, one global CMA-ES generation on the client means, ``sigma_loc``.

  Args:
    state: the server's search state.
    client_means: ``[m, P]`` final local means.
    fitnesses: ``[m]`` their losses.
    sigmas: ``[m, T]`` local step sizes before each local ask.
    population_size: ``lambda_loc`` of the clients (gives ``mu_loc``).
    key: for the discarded ``ask`` (it draws a population nobody uses).
  """
  m, num_dims = client_means.shape
  strategy = cma_strategy(num_dims, m)
  params = all_parent_params(strategy, m)
  sigma_g = global_sigma(sigmas, population_size)
  search = state.search.replace(std=sigma_g)
  _, search = strategy.ask(key, search, params)  # refreshes B and D from C, as pycma's ask
  search, _ = strategy.tell(tell_key(), client_means, fitnesses, search, params)
  local_sigma = search.std / sigma_g * state.local_sigma
  # As the reference: the global distribution then carries sigma_loc (sent next round).
  return FedBPTState(search=search.replace(std=local_sigma), local_sigma=local_sigma)


def make_fedbpt(candidate_losses: CandidateLosses, population_size: int, num_steps: int,
                batch_size: int, num_clients: int, cohort_size: int, initial_sigma: float,
                backend: str = "vmap",
                sigma_floor_ratio: float = SIGMA_FLOOR_RATIO) -> Algorithm:
  """Builds FedBPT; ``state.params`` is the global mean, ``state.opt_state`` a ``FedBPTState``.

  Args:
    candidate_losses: ``(stacked candidate params, batch) -> [num_candidates]``.
    population_size: ``lambda_loc``, candidates per local CMA-ES generation (>= 2).
    num_steps: local CMA-ES generations per round.
    batch_size: minibatch size of every evaluation.
    num_clients: number of clients.
    cohort_size: ``m``, clients per round and the global population size.
    initial_sigma: ``sigma_0`` of the global and the local distributions.
    backend: cohort backend (``'vmap'``, ``'shard'`` or ``'loop'``).
    sigma_floor_ratio: floor on the sent sigma, in units of ``sigma_0`` (0 = reference).
  """
  if int(population_size) < 2:
    raise ValueError(f"fedbpt needs a local population (num_directions) >= 2, got "
                     f"{population_size}")
  sigma_0 = float(initial_sigma)
  floor = float(sigma_floor_ratio) * sigma_0

  def init(params):
    flat, _ = flatten(params)
    search = cma_start(cma_strategy(flat.size, cohort_size), flat, sigma_0)
    opt_state = FedBPTState(search=search, local_sigma=jnp.asarray(sigma_0, jnp.float32))
    return ServerState(params=params, opt_state=opt_state, round=jnp.asarray(0, jnp.int32))

  def broadcast(state):
    server = state.opt_state
    return ClientStart(params=state.params, sigma=jnp.maximum(server.local_sigma, floor),
                       covariance=server.search.C)

  def server_update(state, out, ids, key):
    server = fedbpt_server_update(state.opt_state, out.mean, out.fitness, out.sigmas,
                                  population_size, key)
    _, unravel = flatten(state.params)
    params = jax.tree.map(lambda old, new: new.astype(old.dtype), state.params,
                          unravel(server.search.mean))
    metrics = {"train_loss": weighted_train_loss(out), "cohort": ids,
               "local_sigma": server.local_sigma, **nonfinite_count(out)}
    return ServerState(params=params, opt_state=server, round=state.round + 1), metrics

  cost = RoundCost(cohort_size, fedbpt_candidates_per_client(population_size, num_steps),
                   batch_size)
  return make_algorithm(
      "fedbpt", cohort_size, cost, init=init, select=cohort_selector(num_clients, cohort_size),
      broadcast=broadcast,
      client_update=make_fedbpt_client(candidate_losses, population_size, num_steps, batch_size),
      server_update=server_update, backend=backend)


def fedbpt_candidates_per_client(population_size: int, num_steps: int) -> int:
  """Candidates a client scores per round: ``num_steps * lambda_loc`` plus ``f_c``'s one."""
  return int(num_steps) * int(population_size) + 1



def check(config: Any) -> None:
  """FedBPT runs CMA-ES over a continuous prompt, with a global population of >= 2 clients."""
  refuse_faults(config, "fedbpt", why=" (its uploads are CMA-ES means and fitnesses, not "
                "deltas, and its global population is the fixed cohort)")
  estimator = get_field(config, "zo.estimator")
  if estimator != FEDBPT_ESTIMATOR:
    raise ConfigError(f"config.server.algorithm='fedbpt' runs CMA-ES over a continuous prompt "
                      f"on the clients: set config.zo.estimator='{FEDBPT_ESTIMATOR}' (got "
                      f"{estimator!r}; a discrete prompt needs a continuous one, e.g. "
                      "config.prompt.kind='soft')")
  cohort = get_field(config, "server.cohort_size") or get_field(config, "data.num_clients")
  if cohort < 2:
    raise ConfigError(f"config.server.algorithm='fedbpt' needs a cohort of >= 2 clients (the "
                      f"global CMA-ES population): config.server.cohort_size="
                      f"{get_field(config, 'server.cohort_size')} with config.data.num_clients="
                      f"{get_field(config, 'data.num_clients')} gives {cohort}")


def build(ctx: AlgorithmContext) -> Algorithm:
  if ctx.estimator.name != FEDBPT_ESTIMATOR:
    raise ConfigError(f"config.server.algorithm='fedbpt' runs CMA-ES on the clients: set "
                      f"config.zo.estimator='{FEDBPT_ESTIMATOR}' (got {ctx.estimator.name!r})")
  return make_fedbpt(ctx.candidate_losses, ctx.estimator.num_candidates, ctx.local_steps,
                     ctx.batch_size, ctx.num_clients, ctx.cohort_size, ctx.config.zo.sigma,
                     ctx.backend)


register_algorithm("fedbpt", build, check, display_name="FedBPT")
