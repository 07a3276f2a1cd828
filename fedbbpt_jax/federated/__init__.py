"""Federated algorithms: client local updates, cohort sampling, aggregation."""

from fedbbpt_jax.federated.client import (ClientData, ClientOutput, make_client_optimizer,
                                          make_local_update)
from fedbbpt_jax.federated.centralized import centralized_steps, make_centralized
from fedbbpt_jax.federated.fedbpt import fedbpt_candidates_per_client, make_fedbpt
from fedbbpt_jax.federated.fedone import make_fedone
from fedbbpt_jax.federated.local_only import make_local_only
from fedbbpt_jax.federated.server import (FederatedAlgorithm, ServerState, make_fedbbpt,
                                          make_server_optimizer, sample_cohort, weighted_mean)

ALGORITHMS = ("centralized", "fedbbpt", "fedbpt", "fedone", "local_only")

__all__ = ["ALGORITHMS", "ClientData", "ClientOutput", "FederatedAlgorithm", "ServerState",
           "centralized_steps", "fedbpt_candidates_per_client", "make_centralized",
           "make_client_optimizer", "make_fedbbpt", "make_fedbpt", "make_fedone",
           "make_local_only",
           "make_local_update",
           "make_server_optimizer", "sample_cohort", "weighted_mean"]
