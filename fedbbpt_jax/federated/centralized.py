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

The pooled client is built inside ``apply`` from the per-client arrays (real rows of
client 0, then client 1, ...; padding last), so the algorithm has the same interface as
the others, and it is exactly Fed-BBPT with one client holding the pooled data and plain
FedAvg (``params + delta``).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from fedbbpt_jax.federated.client import ClientData, ClientOutput
from fedbbpt_jax.federated.server import FederatedAlgorithm, make_fedbbpt

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
                     project: Callable[[PyTree], PyTree] | None = None) -> FederatedAlgorithm:
  """Builds the centralized baseline.

  Args:
    pooled_local_update: ``make_local_update(...)`` with
      ``num_steps = centralized_steps(cohort_size, local_steps)``.
    num_clients: number of clients whose data are pooled (the metrics' ``cohort``).
    project: optional map back to the feasible set after the update.
  """
  single = make_fedbbpt(pooled_local_update, optax.sgd(1.0), CENTRALIZED_CLIENTS,
                        CENTRALIZED_CLIENTS, "vmap", project=project)

  def apply(state, data, key, hparams):
    state, metrics = single.apply(state, pool_clients(data), key, hparams)
    return state, dict(metrics, cohort=jnp.arange(num_clients))

  return FederatedAlgorithm(name="centralized", init=single.init, apply=apply)
