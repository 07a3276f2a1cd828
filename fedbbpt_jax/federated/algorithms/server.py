"""Server state and the round's randomness: keys and cohort sampling as pure functions.

Client sampling depends only on ``(root key, round)``, so a resumed run samples
exactly what an uninterrupted run would.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from fedbbpt_jax.federated.aggregation.aggregators import weighted_mean
from fedbbpt_jax.federated.algorithms.optimizers import make_server_optimizer

PyTree = Any

__all__ = ["ServerState", "client_keys", "make_server_optimizer", "round_keys", "sample_cohort",
           "weighted_mean"]


@struct.dataclass
class ServerState:
  """Global generator, server optimizer state and the number of completed rounds."""

  params: PyTree
  opt_state: PyTree
  round: jnp.ndarray


def round_keys(key: jax.Array, round_idx: jnp.ndarray) -> tuple[jax.Array, jax.Array]:
  """Returns ``(sampling_key, clients_key)`` of a round: a pure function of (key, round)."""
  k_sample, k_clients = jax.random.split(jax.random.fold_in(key, round_idx))
  return k_sample, k_clients


def sample_cohort(key: jax.Array, num_clients: int, cohort_size: int) -> jnp.ndarray:
  """Draws ``cohort_size`` distinct client ids uniformly, sorted ascending."""
  if not 0 < cohort_size <= num_clients:
    raise ValueError(f"cohort_size={cohort_size} must be in [1, num_clients={num_clients}]")
  if cohort_size == num_clients:
    return jnp.arange(num_clients)
  return jnp.sort(jax.random.permutation(key, num_clients)[:cohort_size])


def client_keys(clients_key: jax.Array, client_ids: jnp.ndarray) -> jax.Array:
  """One key per client, depending only on the round and the client's id."""
  return jax.vmap(lambda i: jax.random.fold_in(clients_key, i))(client_ids)
