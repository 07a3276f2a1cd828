"""Data sets and their partitioning among federated clients."""

from fedbbpt_jax.data.digits import load_digits_dataset
from fedbbpt_jax.data.drug_reviews import TextClassificationData, load_drug_reviews
from fedbbpt_jax.data.fashion_mnist import (
    CLASS_NAMES,
    FashionMnistDebian,
    load_fashion_mnist,
)
from fedbbpt_jax.data.idx import read_idx
from fedbbpt_jax.data.partition import (
    PARTITIONS,
    PackedClients,
    k_shot_per_class,
    label_histograms,
    make_partition,
    pack_clients,
    partition_dirichlet,
    partition_iid,
    partition_shards,
)

__all__ = [
    "CLASS_NAMES",
    "PARTITIONS",
    "FashionMnistDebian",
    "PackedClients",
    "TextClassificationData",
    "k_shot_per_class",
    "label_histograms",
    "load_digits_dataset",
    "load_drug_reviews",
    "load_fashion_mnist",
    "make_partition",
    "pack_clients",
    "partition_dirichlet",
    "partition_iid",
    "partition_shards",
    "read_idx",
]
