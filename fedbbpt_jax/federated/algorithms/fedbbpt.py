"""Fed-BBPT: FedAvg of prompt generators trained by zero-order local steps.

Per round: sample a cohort, run every member's local update from the global
generator, combine the deltas with the configured aggregator (example-weighted mean
by default), and apply the server optimizer to the pseudo-gradient ``-aggregate``;
``project`` (optional) maps the new global parameters back to their feasible set
(e.g. the simplex). With ``client.upload='seeds'`` clients upload their key and
candidate losses (``SeedUpload``) and the server replays each to its delta first
(``seed_uploads.py``); everything after that is the same.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from fedbbpt_jax.federated.aggregation.aggregators import (DEFAULT_AGGREGATOR, Aggregator,
                                                           aggregator_name, make_aggregator,
                                                           split_aggregated)
from fedbbpt_jax.federated.algorithms.algorithm import (Algorithm, AlgorithmContext, RoundCost,
                                                        keep_state_if,
                                                        make_algorithm, register_algorithm)
from fedbbpt_jax.federated.algorithms.client import ClientOutput
from fedbbpt_jax.federated.algorithms.optimizers import make_server_optimizer
from fedbbpt_jax.federated.algorithms.poisson import (PoissonSelector, capacity, chunk_size,
                                                      poisson_cohorts)
from fedbbpt_jax.federated.algorithms.seed_uploads import make_seed_local_update, replay_cohort
from fedbbpt_jax.federated.algorithms.server import ServerState, sample_cohort

PyTree = Any


def cohort_selector(num_clients: int, cohort_size: int) -> Callable:
  """``select(key, data) -> (ids, cohort)``: a uniform cohort without replacement."""

  def select(key, data):
    ids = sample_cohort(key, num_clients, cohort_size)
    return ids, jax.tree.map(lambda a: a[ids], data)

  return select


def poisson_selector(num_clients: int, cohort_size: int, chunk: int = 0
                     ) -> tuple[PoissonSelector, int]:
  """``(select, chunk)``: Poisson cohorts of expected size ``cohort_size``, their static
  capacity a multiple of the chunk their members run in (``chunk=0``: about the square
  root of the capacity; see ``poisson.capacity``)."""
  chunk = chunk_size(capacity(num_clients, cohort_size), chunk)
  slots = capacity(num_clients, cohort_size, chunk)
  if slots % chunk:  # capped at num_clients: the chunk must divide it
    chunk = next(c for c in range(chunk, 0, -1) if slots % c == 0)
  return PoissonSelector(num_clients, cohort_size, slots), chunk


def nonfinite_count(uploads: Any) -> dict:
  """``{"nonfinite_candidates": total}`` over the cohort (empty if clients do not report it)."""
  if "nonfinite_candidates" not in uploads.metrics:
    return {}
  return {"nonfinite_candidates": jnp.sum(uploads.metrics["nonfinite_candidates"])}


def weighted_train_loss(uploads: Any) -> jnp.ndarray:
  """The cohort's training loss, weighted by the clients' example counts."""
  return (jnp.sum(uploads.metrics["train_loss"] * uploads.num_examples)
          / jnp.sum(uploads.num_examples))


def averaging_server(server_optimizer: optax.GradientTransformation,
                     aggregate: Aggregator,
                     project: Callable[[PyTree], PyTree] | None = None,
                     keep_when_empty: bool = False) -> tuple[Callable, Callable]:
  """``(init, server_update)`` of a server that steps on ``-aggregate(deltas)``.

  Metrics an aggregator returns (``Aggregated``) go under ``metrics["aggregator"]``.
  ``keep_when_empty``: a round whose uploads carry no weight at all (a Poisson cohort that
  drew nobody) keeps the parameters and the optimizer state (only the round counter
  moves), instead of a server step on a zero pseudo-gradient, which moves momentum and
  Adam; off for DP-FedAvg, whose noisy step is released whoever joined.
  """

  def init(params):
    return ServerState(params=params, opt_state=server_optimizer.init(params),
                       round=jnp.asarray(0, jnp.int32))

  def server_update(state, uploads: ClientOutput, ids, key):
    mean_delta, aggregator_metrics = split_aggregated(
        aggregate(uploads.delta, uploads.num_examples, key))
    pseudo_grad = jax.tree.map(jnp.negative, mean_delta)
    updates, opt_state = server_optimizer.update(pseudo_grad, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    if project is not None:
      params = project(params)
    metrics = {"train_loss": weighted_train_loss(uploads), "cohort": ids,
               **nonfinite_count(uploads)}
    if aggregator_metrics:
      metrics["aggregator"] = aggregator_metrics
    new = ServerState(params=params, opt_state=opt_state, round=state.round + 1)
    if keep_when_empty:
      new = keep_state_if(jnp.sum(uploads.num_examples) == 0, new, state)
    return new, metrics

  return init, server_update


def make_fedbbpt(local_update: Callable[..., ClientOutput],
                 server_optimizer: optax.GradientTransformation, num_clients: int,
                 cohort_size: int, backend: str = "vmap",
                 project: Callable[[PyTree], PyTree] | None = None,
                 aggregator: str | Aggregator = DEFAULT_AGGREGATOR,
                 round_cost: RoundCost | None = None, name: str = "fedbbpt",
                 receive: Callable[..., ClientOutput] | None = None,
                 select: Callable | None = None, partial_chunk: int = 0,
                 keep_when_empty: bool = False) -> Algorithm:
  """Builds Fed-BBPT from a local update (see the module docstring).

  ``aggregator``: a registered name (a configured rule takes its defaults) or the
  aggregate function itself (``aggregators.make_aggregator(name, config, cohort_size)``).
  ``receive``: decodes the cohort's uploads into ``ClientOutput`` first (seed uploads:
  ``seed_uploads.replay_cohort``); then ``local_update`` returns what it decodes.
  ``select``: the cohort selector (default: a uniform cohort of exactly ``cohort_size``);
  ``partial_chunk`` > 0 for a selector of partly filled cohorts (``poisson_selector``);
  ``keep_when_empty``: see ``averaging_server``.
  """
  aggregate = make_aggregator(aggregator) if isinstance(aggregator, str) else aggregator
  init, server_update = averaging_server(server_optimizer, aggregate, project,
                                         keep_when_empty)
  return make_algorithm(name, cohort_size, round_cost or RoundCost(cohort_size, 0, 0),
                        init=init, select=select or cohort_selector(num_clients, cohort_size),
                        broadcast=lambda state: state.params, client_update=local_update,
                        server_update=server_update, backend=backend, receive=receive,
                        partial_chunk=partial_chunk)


def build(ctx: AlgorithmContext) -> Algorithm:
  """Fed-BBPT from the config: ``server.optimizer/lr/momentum/aggregator/cohort_size``
  (and ``server.dp`` for ``aggregator='dp_gaussian'``), ``client.upload``, and
  ``server.sampling`` (Poisson cohorts, chunked by ``parallel.cohort_chunk``).

  Under Poisson sampling ``RoundCost`` is the EXPECTED round's (``cohort_size``
  activations); the run meters each round's ``participants``."""
  s = ctx.config.server
  cost = RoundCost(ctx.cohort_size, ctx.local_steps * ctx.estimator.num_candidates,
                   ctx.batch_size)
  local_update, receive = ctx.local_update(), None
  if ctx.config.client.get("upload", "dense") == "seeds":
    local_update, replay = make_seed_local_update(
        ctx.candidate_losses, ctx.estimator, ctx.client_optimizer, ctx.local_steps,
        ctx.batch_size, project=ctx.project, schedule=ctx.schedule)
    receive = replay_cohort(replay)
  select, partial_chunk = None, 0
  if poisson_cohorts(ctx.config):
    select, partial_chunk = poisson_selector(
        ctx.num_clients, ctx.cohort_size, int(ctx.config.parallel.get("cohort_chunk", 0)))
  return make_fedbbpt(local_update, make_server_optimizer(s.optimizer, s.lr, s.momentum),
                      ctx.num_clients, ctx.cohort_size, ctx.backend, project=ctx.project,
                      aggregator=make_aggregator(aggregator_name(s), ctx.config, ctx.cohort_size),
                      round_cost=cost, receive=receive, select=select,
                      partial_chunk=partial_chunk,
                      keep_when_empty=bool(partial_chunk) and aggregator_name(s) != "dp_gaussian")


register_algorithm("fedbbpt", build, applies_aggregator=True, seed_uploads=True,
                   display_name="Fed-BBPT")
