"""Local-only baseline: every client trains its own generator alone, never averaged.

Each client runs the same local update, for the same number of rounds and steps
as Fed-BBPT, from the same initial generator; its parameters simply never leave it.
The state keeps one generator per client (leading client axis); the "server" only
stores each client's result.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from fedbbpt_jax.federated.algorithms.algorithm import (Algorithm, AlgorithmContext, RoundCost,
                                                        make_algorithm, register_algorithm)
from fedbbpt_jax.federated.algorithms.client import ClientOutput
from fedbbpt_jax.federated.algorithms.server import ServerState


def per_client_init(num_clients: int) -> Callable:
  """``init(params)``: every client starts from ``params`` (stacked on a client axis)."""

  def init(params):
    stacked = jax.tree.map(lambda x: jnp.broadcast_to(x, (num_clients,) + x.shape), params)
    return ServerState(params=stacked, opt_state=(), round=jnp.asarray(0, jnp.int32))

  return init


def every_client(num_clients: int) -> Callable:
  """``select(key, data)``: all clients, every round."""

  def select(key, data):
    del key
    return jnp.arange(num_clients), data

  return select


def make_local_only(local_update: Callable[..., ClientOutput], num_clients: int,
                    backend: str = "vmap", round_cost: RoundCost | None = None) -> Algorithm:
  """Builds the local-only algorithm; ``state.params`` has a leading client axis."""

  def server_update(state, uploads, ids, key):
    del ids, key
    params = jax.tree.map(jnp.add, state.params, uploads.delta)
    metrics = {"train_loss": jnp.mean(uploads.metrics["train_loss"])}
    return ServerState(params=params, opt_state=(), round=state.round + 1), metrics

  return make_algorithm("local_only", num_clients,
                        round_cost or RoundCost(num_clients, 0, 0),
                        init=per_client_init(num_clients), select=every_client(num_clients),
                        broadcast=lambda state: state.params, client_update=local_update,
                        server_update=server_update, backend=backend, per_client_state=True)


def build(ctx: AlgorithmContext) -> Algorithm:
  cost = RoundCost(ctx.num_clients, ctx.local_steps * ctx.estimator.num_candidates,
                   ctx.batch_size)
  return make_local_only(ctx.local_update(), ctx.num_clients, ctx.backend, cost)


register_algorithm("local_only", build, baseline=True)
