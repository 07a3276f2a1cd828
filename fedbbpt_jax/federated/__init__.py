"""Federated algorithms: client local updates, cohort sampling, aggregation."""

from fedbbpt_jax.federated.client import (ClientData, ClientOutput, make_client_optimizer,
                                          make_local_update)
from fedbbpt_jax.federated.local_only import make_local_only
from fedbbpt_jax.federated.server import (FederatedAlgorithm, ServerState, make_fedbbpt,
                                          make_server_optimizer, sample_cohort, weighted_mean)

ALGORITHMS = ("fedbbpt", "local_only")

__all__ = ["ALGORITHMS", "ClientData", "ClientOutput", "FederatedAlgorithm", "ServerState",
           "make_client_optimizer", "make_fedbbpt", "make_local_only", "make_local_update",
           "make_server_optimizer", "sample_cohort", "weighted_mean"]
