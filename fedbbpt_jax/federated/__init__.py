"""Federated algorithms: the contract and its registry, client steps, aggregation.

Importing this package registers the built-in algorithms (``fedbbpt``, ``fedone``,
``centralized``, ``fedbpt``, the decentralized ``dfedsam``, the Bayesian-optimisation ``fed_bo`` and
``centralized_bo``, and the ``local_only`` baseline), the
aggregators (``weighted_mean``, the robust ``median``, ``trimmed_mean``, ``norm_bounded_mean``,
``krum``, ``multi_krum``, and ``dp_gaussian``: DP-FedAvg, ``federated.aggregation.privacy``
accounts for it) and the client/server optimizers. The sub-packages: ``algorithms`` (the
contract, client and server halves, one module per algorithm), ``aggregation`` (rules, DP,
accountant), ``simulated_faults`` (attacks, dropouts); ``topology`` holds the decentralized
variant's graphs.
"""

from fedbbpt_jax.data.clients import ClientData
from fedbbpt_jax.federated.aggregation.aggregators import (AGGREGATORS, Aggregated, make_aggregator,
                                                           register_configured, weighted_mean)
from fedbbpt_jax.federated.algorithms.algorithm import (ALGORITHMS, Algorithm, AlgorithmContext,
                                                        AlgorithmSpec, FederatedAlgorithm,
                                                        RoundCost, aggregators_of,
                                                        algorithms_applying,
                                                        algorithms_applying_aggregator,
                                                        algorithms_with_seed_uploads,
                                                        make_algorithm, refuse_host_server,
                                                        register_algorithm,
                                                        server_algorithm_names, simulated_round,
                                                        with_faults)
from fedbbpt_jax.federated.aggregation import robust_aggregators  # registers median, krum, ...
from fedbbpt_jax.federated.algorithms.poisson import refuse_poisson
from fedbbpt_jax.federated.simulated_faults.attacks import ATTACK_KINDS, flip_labels
from fedbbpt_jax.federated.simulated_faults.faults import (fault_summary, label_flip_ids,
                                                           make_upload_faults)
from fedbbpt_jax.federated.algorithms.centralized import centralized_steps, make_centralized
from fedbbpt_jax.federated.algorithms.bayes_opt import BOState, make_bayes_opt
from fedbbpt_jax.federated.algorithms.client import (SCHEDULES, ClientOutput, StepHooks,
                                                     make_local_step, make_local_update,
                                                     nonfinite_as_worst, small_client_warning)
from fedbbpt_jax.federated.algorithms.dfedsam import make_dfedsam
from fedbbpt_jax.federated.aggregation.dp_aggregator import make_dp_gaussian
from fedbbpt_jax.federated.algorithms.fedbbpt import make_fedbbpt
from fedbbpt_jax.federated.algorithms.fedbpt import fedbpt_candidates_per_client, make_fedbpt
from fedbbpt_jax.federated.algorithms.fedone import make_fedone
from fedbbpt_jax.federated.algorithms.local_only import make_local_only
from fedbbpt_jax.federated.algorithms.optimizers import (CLIENT_OPTIMIZERS, SERVER_OPTIMIZERS,
                                                         make_client_optimizer,
                                                         make_server_optimizer)
from fedbbpt_jax.federated.algorithms.seed_uploads import (UPLOADS, SeedUpload, seed_estimators,
                                                           make_seed_local_update)
from fedbbpt_jax.federated.algorithms.server import ServerState, sample_cohort
from fedbbpt_jax.federated.topology import TOPOLOGIES

__all__ = ["AGGREGATORS", "ALGORITHMS", "ATTACK_KINDS", "Aggregated", "Algorithm",
           "AlgorithmContext", "AlgorithmSpec", "BOState", "make_bayes_opt", "CLIENT_OPTIMIZERS",
           "ClientData",
           "ClientOutput", "FederatedAlgorithm", "RoundCost", "SCHEDULES",
           "SERVER_OPTIMIZERS", "SeedUpload", "ServerState", "StepHooks", "TOPOLOGIES", "UPLOADS",
           "aggregators_of", "algorithms_applying", "algorithms_applying_aggregator",
           "algorithms_with_seed_uploads",
           "centralized_steps", "fault_summary", "fedbpt_candidates_per_client", "flip_labels",
           "label_flip_ids", "make_aggregator", "make_algorithm", "make_centralized",
           "make_client_optimizer", "make_dfedsam", "make_dp_gaussian", "make_fedbbpt",
           "make_fedbpt", "make_fedone", "make_local_only", "make_local_step",
           "make_local_update", "make_seed_local_update", "make_server_optimizer",
           "make_upload_faults", "nonfinite_as_worst", "refuse_host_server", "refuse_poisson",
           "register_algorithm", "register_configured", "robust_aggregators", "sample_cohort",
           "seed_estimators",
           "server_algorithm_names", "simulated_round",
           "small_client_warning", "weighted_mean", "with_faults"]
