"""Selects the federated algorithm of an experiment (``config.server.algorithm``).

Every algorithm is built from the same task (``candidate_losses``), estimator, client
optimizer and local update, and comes with its exact black-box cost per round
(``RoundCost``), which the round loop's query meter and budget use:

| algorithm     | activations / round | candidates per activation              |
|---------------|---------------------|----------------------------------------|
| ``fedbbpt``   | cohort size C       | K x N (local steps x estimator cands)  |
| ``fedone``    | 1                   | K x N                                  |
| ``centralized`` | 1 (pooled data)   | C x K x N (same calls as Fed-BBPT)     |
| ``fedbpt``    | C                   | K x lambda + 1 (the final mean's fitness) |

Each candidate is scored on one minibatch of ``client.batch_size`` examples.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import ml_collections
import optax

from fedbbpt_jax.federated import (FederatedAlgorithm, centralized_steps,
                                   fedbpt_candidates_per_client, make_centralized, make_fedbbpt,
                                   make_fedbpt, make_fedone, make_local_update,
                                   make_server_optimizer)
from fedbbpt_jax.zo import Estimator

PyTree = Any
SERVER_ALGORITHMS = ("centralized", "fedbbpt", "fedbpt", "fedone")
FEDBPT_ESTIMATOR = "cma_es"


@dataclasses.dataclass(frozen=True)
class RoundCost:
  """Black-box work of one training round.

  Attributes:
    client_activations: (client, round) participations.
    candidates_per_activation: parameter points one activation scores.
    batch_size: examples each candidate is scored on.
  """

  client_activations: int
  candidates_per_activation: int
  batch_size: int

  @property
  def bb_calls(self) -> int:
    return self.client_activations * self.candidates_per_activation

  @property
  def bb_examples(self) -> int:
    return self.bb_calls * self.batch_size

  def counters(self) -> dict[str, int]:
    """The query-meter increments of one round (methods.md 12)."""
    return {"bb_examples": self.bb_examples, "bb_calls": self.bb_calls,
            "candidates": self.bb_calls, "client_activations": self.client_activations}


def build_algorithm(config: ml_collections.ConfigDict, candidate_losses: Callable,
                    estimator: Estimator, client_optimizer: optax.GradientTransformation,
                    local_update: Callable,
                    project: Callable[[PyTree], PyTree] | None = None
                    ) -> tuple[FederatedAlgorithm, int, RoundCost]:
  """Returns ``(algorithm, cohort_size, round_cost)`` for ``config.server.algorithm``.

  ``config.server.algorithm`` may be absent (older configs): Fed-BBPT.
  """
  name = config.server.get("algorithm", "fedbbpt")
  num_clients = config.data.num_clients
  steps, batch = config.client.local_steps, config.client.batch_size
  backend = config.parallel.backend
  cohort_size = config.server.cohort_size or num_clients
  per_activation = steps * estimator.num_candidates
  if name == "fedbbpt":
    server_opt = make_server_optimizer(config.server.optimizer, config.server.lr,
                                       config.server.momentum)
    algorithm = make_fedbbpt(local_update, server_opt, num_clients, cohort_size, backend,
                             project=project)
    return algorithm, cohort_size, RoundCost(cohort_size, per_activation, batch)
  if name == "fedone":
    algorithm = make_fedone(local_update, num_clients, backend, project)
    return algorithm, 1, RoundCost(1, per_activation, batch)
  if name == "centralized":
    pooled_steps = centralized_steps(cohort_size, steps)
    pooled = make_local_update(candidate_losses, estimator, client_optimizer, pooled_steps,
                               batch, project=project)
    algorithm = make_centralized(pooled, num_clients, project)
    return algorithm, cohort_size, RoundCost(1, pooled_steps * estimator.num_candidates, batch)
  if name == "fedbpt":
    if estimator.name != FEDBPT_ESTIMATOR:
      raise ValueError(f"config.server.algorithm='fedbpt' runs CMA-ES on the clients: set "
                       f"config.zo.estimator='{FEDBPT_ESTIMATOR}' (got {estimator.name!r})")
    population = estimator.num_candidates
    algorithm = make_fedbpt(candidate_losses, population, steps, batch, num_clients,
                            cohort_size, config.zo.sigma, backend)
    return algorithm, cohort_size, RoundCost(
        cohort_size, fedbpt_candidates_per_client(population, steps), batch)
  raise ValueError(f"config.server.algorithm={name!r} is not one of {list(SERVER_ALGORITHMS)}")
