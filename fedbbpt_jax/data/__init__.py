"""Data sets, their registry, and their partitioning among federated clients."""

from fedbbpt_jax.data.client_folders import ClientFolders, ClientFoldersError, load_client_folders
from fedbbpt_jax.data.coop_benchmarks import (COOP_BENCHMARKS, COOP_READS, load_few_shot,
                                              open_benchmark)
from fedbbpt_jax.data.coop_few_shot import FewShotSplit, coop_few_shot, split_among_clients
from fedbbpt_jax.data.coop_folders import (COOP_LAYOUTS, CoopLayout, CoopLayoutError,
                                           open_coop_folder)
from fedbbpt_jax.data.image_decoding import (ImageDecodeError, clip_resize_crop, decode_image,
                                             to_unit_float)
from fedbbpt_jax.data.labelled_images import ImageSplit, LabelledImages
from fedbbpt_jax.data.tfds_images import TFDS_LAYOUTS, TfdsLayout, TfdsLayoutError, open_tfds
from fedbbpt_jax.data.clients import (LOCAL_TEST_STREAM, TEST_SUBSET_SEED, ClientData,
                                      client_data, client_parts, describe_test_subset,
                                      local_test_parts, local_test_seed, natural_parts,
                                      size_only_clients, test_subset, test_subset_indices)
from fedbbpt_jax.data.digits import load_digits_dataset
from fedbbpt_jax.data.drug_reviews import load_drug_reviews
from fedbbpt_jax.data.text_datasets import TextClassificationData
from fedbbpt_jax.data.fashion_mnist import (
    CLASS_NAMES,
    FashionMnistDebian,
    load_fashion_mnist,
)
from fedbbpt_jax.data.idx import read_idx
from fedbbpt_jax.data.partition import (
    DRAWN_PARTITIONS,
    NATURAL,
    PARTITION_READS,
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
from fedbbpt_jax.data.registry import (DATASETS, NATURAL_PARTITION, has_natural_partition,
                                       register_dataset, register_image_arrays,
                                       register_text_dataset, register_tfds_folder)

__all__ = [
    "ClientFolders",
    "ClientFoldersError",
    "DRAWN_PARTITIONS",
    "NATURAL",
    "NATURAL_PARTITION",
    "has_natural_partition",
    "load_client_folders",
    "natural_parts",
    "CLASS_NAMES",
    "COOP_BENCHMARKS",
    "COOP_LAYOUTS",
    "COOP_READS",
    "ClientData",
    "CoopLayout",
    "CoopLayoutError",
    "FewShotSplit",
    "ImageDecodeError",
    "ImageSplit",
    "LabelledImages",
    "TFDS_LAYOUTS",
    "TfdsLayout",
    "TfdsLayoutError",
    "clip_resize_crop",
    "coop_few_shot",
    "decode_image",
    "load_few_shot",
    "open_benchmark",
    "open_coop_folder",
    "open_tfds",
    "split_among_clients",
    "to_unit_float",
    "DATASETS",
    "PARTITION_READS",
    "PARTITIONS",
    "FashionMnistDebian",
    "PackedClients",
    "TEST_SUBSET_SEED",
    "TextClassificationData",
    "client_data",
    "client_parts",
    "describe_test_subset",
    "k_shot_per_class",
    "label_histograms",
    "LOCAL_TEST_STREAM",
    "local_test_parts",
    "local_test_seed",
    "load_digits_dataset",
    "load_drug_reviews",
    "load_fashion_mnist",
    "make_partition",
    "pack_clients",
    "partition_dirichlet",
    "partition_iid",
    "register_text_dataset",
    "partition_shards",
    "read_idx",
    "register_dataset",
    "register_image_arrays",
    "register_tfds_folder",
    "size_only_clients",
    "test_subset",
    "test_subset_indices",
]
