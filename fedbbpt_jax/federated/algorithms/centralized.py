"""Centralized baseline (the upper reference): every client's data pooled in one client.

Per round, the pooled client runs ``cohort_size x local_steps`` zero-order steps
(``local_update`` must be built with that many steps) from the current parameters
with the same estimator, batch size and client optimizer as Fed-BBPT, and its result
becomes the new parameters. A round therefore spends exactly the black-box work of a
Fed-BBPT round: ``cohort_size * local_steps * num_candidates`` calls of ``batch_size``
examples (same ``bb_calls``, ``bb_examples`` and ``candidates``; one client activation).
The alternative, ``local_steps`` steps on batches ``cohort_size`` times larger, costs
the same examples but fewer calls and fewer directions per example; the sequential form
is the stronger reference per query.

Its step-size clock (``client.schedule='step'``) ticks once every ``cohort_size``
pooled steps, so round r runs the step sizes of the clients' K-step chains of round r
(each repeated ``cohort_size`` times) rather than a schedule ``cohort_size`` times
further along (which shrank its steps faster than the clients' and made it weaker than
Fed-BBPT in the first baselines sweep).

The pooled client is built by ``select`` from the per-client arrays (real rows of
client 0, then client 1, ...; padding last), so the algorithm has the same contract as
the others, and it is exactly Fed-BBPT with one client holding the pooled data and plain
FedAvg (``params + delta``).
"""

from __future__ import annotations

from typing import Any, Callable

import jax.numpy as jnp
import optax

from fedbbpt_jax.core import check_choice, get_field
from fedbbpt_jax.data.clients import ClientData
from fedbbpt_jax.federated.aggregation.aggregators import AGGREGATORS, DEFAULT_AGGREGATOR
from fedbbpt_jax.federated.algorithms.algorithm import (Algorithm, AlgorithmContext, RoundCost,
                                                        make_algorithm, register_algorithm)
from fedbbpt_jax.federated.algorithms.client import ClientOutput
from fedbbpt_jax.federated.simulated_faults.faults import refuse_faults
from fedbbpt_jax.federated.algorithms.fedbbpt import averaging_server

PyTree = Any
CENTRALIZED_CLIENTS = 1


def pool_clients(data: ClientData) -> ClientData:
  """One client holding every real row of ``data`` (``[clients, max_n, ...]`` arrays).

  The result has one leading client axis of size 1, ``clients * max_n`` rows, the real
  rows first in client order, and ``num_examples`` = the total count.
  """
  num_clients, max_n = data.y.shape[:2]
  real = (jnp.arange(max_n)[None, :] < data.num_examples[:, None]).reshape(-1)
  order = jnp.argsort(~real, stable=True)  # real rows first, each group in client order
  flat = lambda a: a.reshape((num_clients * max_n,) + a.shape[2:])[order][None]
  return ClientData(x=flat(data.x), y=flat(data.y),
                    num_examples=jnp.sum(data.num_examples)[None].astype(data.num_examples.dtype))


def centralized_steps(cohort_size: int, local_steps: int) -> int:
  """Steps per round of the pooled client that match a Fed-BBPT round's queries."""
  return int(cohort_size) * int(local_steps)


def make_centralized(pooled_local_update: Callable[..., ClientOutput], num_clients: int,
                     project: Callable[[PyTree], PyTree] | None = None,
                     round_cost: RoundCost | None = None,
                     cohort_size: int | None = None) -> Algorithm:
  """Builds the centralized baseline.

  Args:
    pooled_local_update: ``make_local_update(...)`` with
      ``num_steps = centralized_steps(cohort_size, local_steps)``.
    num_clients: number of clients whose data are pooled (the metrics' ``cohort``).
    project: optional map back to the feasible set after the update.
    round_cost: the exact cost of one round (for the query meter).
    cohort_size: the Fed-BBPT cohort a round matches (reported; default all clients).
  """
  init, pooled_update = averaging_server(optax.sgd(1.0), AGGREGATORS.get(DEFAULT_AGGREGATOR),
                                         project)

  def select(key, data):
    del key
    return jnp.arange(CENTRALIZED_CLIENTS), pool_clients(data)

  def server_update(state, uploads, ids, key):
    state, metrics = pooled_update(state, uploads, ids, key)
    return state, dict(metrics, cohort=jnp.arange(num_clients))

  return make_algorithm("centralized", cohort_size or num_clients,
                        round_cost or RoundCost(CENTRALIZED_CLIENTS, 0, 0), init=init,
                        select=select, broadcast=lambda state: state.params,
                        client_update=pooled_local_update, server_update=server_update,
                        backend="vmap")


# ``server.pooled_clock``: 'client' ticks the step-size clock once per cohort of pooled
# steps (the clients' schedule); 'global' once per pooled step (the schedule runs
# cohort_size times further; kept for the ablation that found it).
POOLED_CLOCKS = ("client", "global")


def check_fields(config: Any) -> None:
  """``server.pooled_clock``, where the config has it (whichever algorithm runs)."""
  if "pooled_clock" in get_field(config, "server"):
    check_choice(config, "server.pooled_clock", POOLED_CLOCKS)


def check(config: Any) -> None:
  """The pooled client takes no simulated faults."""
  refuse_faults(config, "centralized", why=" (one pooled client, no uploads to corrupt or drop)")


def build(ctx: AlgorithmContext) -> Algorithm:
  steps = centralized_steps(ctx.cohort_size, ctx.local_steps)
  cost = RoundCost(CENTRALIZED_CLIENTS, steps * ctx.estimator.num_candidates, ctx.batch_size)
  clock = ctx.config.server.get("pooled_clock", "client")
  per_tick = ctx.cohort_size if clock == "client" else 1
  return make_centralized(ctx.local_update(steps, steps_per_tick=per_tick),
                          ctx.num_clients, ctx.project, cost, ctx.cohort_size)


register_algorithm("centralized", build, check, check_fields=check_fields,
                   reads={"server.pooled_clock": POOLED_CLOCKS[0]})
