"""FedOne (Wang et al., ICML 2025; arXiv 2506.14929): one activated client per round.

A round samples one client uniformly, runs its local training from the global
parameters, and replaces the global parameters by the activated client's result.
This is exactly Fed-BBPT with a cohort of one and plain FedAvg on the server (SGD,
learning rate 1 on the pseudo-gradient ``-delta``), so FedOne reuses ``make_fedbbpt``.

One difference from FedOne's code, a choice: client optimizer moments are reset
at every activation (stateless clients), whereas FedOne keeps a client's AdamW
moments across its activations, possibly many rounds old.
"""

from __future__ import annotations

from typing import Any, Callable

import optax

from fedbbpt_jax.federated.algorithms.algorithm import (Algorithm, AlgorithmContext, RoundCost,
                                                        register_algorithm)
from fedbbpt_jax.federated.algorithms.client import ClientOutput
from fedbbpt_jax.federated.algorithms.fedbbpt import make_fedbbpt

PyTree = Any
FEDONE_COHORT_SIZE = 1


def make_fedone(local_update: Callable[..., ClientOutput], num_clients: int,
                backend: str = "vmap", project: Callable[[PyTree], PyTree] | None = None,
                round_cost: RoundCost | None = None) -> Algorithm:
  """Builds FedOne: Fed-BBPT with one activated client per round and FedAvg."""
  return make_fedbbpt(local_update, optax.sgd(1.0), num_clients, FEDONE_COHORT_SIZE, backend,
                      project=project, round_cost=round_cost, name="fedone")


def build(ctx: AlgorithmContext) -> Algorithm:
  cost = RoundCost(FEDONE_COHORT_SIZE, ctx.local_steps * ctx.estimator.num_candidates,
                   ctx.batch_size)
  return make_fedone(ctx.local_update(), ctx.num_clients, ctx.backend, ctx.project, cost)


register_algorithm("fedone", build, display_name="FedOne")
