"""Local-only baseline: every client trains its own generator alone, never averaged.

Each client runs the same local update, for the same number of rounds and steps
as Fed-BBPT, from the same initial generator; its parameters simply never leave it.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from fedbbpt_jax.federated.client import ClientOutput
from fedbbpt_jax.federated.server import (FederatedAlgorithm, ServerState, client_keys,
                                          round_keys)
from fedbbpt_jax.parallel import run_cohort


def make_local_only(local_update: Callable[..., ClientOutput], num_clients: int,
                    backend: str = "vmap") -> FederatedAlgorithm:
  """Builds the local-only algorithm; ``state.params`` has a leading client axis."""
  cohort_fn = run_cohort(local_update, backend, per_client_params=True)

  def init(params):
    stacked = jax.tree.map(lambda x: jnp.broadcast_to(x, (num_clients,) + x.shape), params)
    return ServerState(params=stacked, opt_state=(), round=jnp.asarray(0, jnp.int32))

  def apply(state, data, key, hparams):
    _, k_clients = round_keys(key, state.round)
    ids = jnp.arange(num_clients)
    out = cohort_fn(state.params, data, client_keys(k_clients, ids), hparams, state.round)
    params = jax.tree.map(jnp.add, state.params, out.delta)
    metrics = {"train_loss": jnp.mean(out.metrics["train_loss"])}
    return ServerState(params=params, opt_state=(), round=state.round + 1), metrics

  return FederatedAlgorithm(name="local_only", init=init, apply=apply)
