"""Federated client data: partition -> cap -> pack -> ``ClientData``, the test subset,
and the clients' local test splits.

Every task family turns its training examples into clients the same way, so the
steps live here once:

    parts = client_parts(train_y, config.data)          # partition + per-client cap
    clients = client_data(train_x, train_y, parts)      # [C, max_n, ...] + true sizes
    test_x, test_y = test_subset(test_x, test_y, config.data.test_examples)
    local = local_test_parts(test_y, config.data)       # federated evaluation's splits
"""

from __future__ import annotations

from typing import Any, Sequence

import jax.numpy as jnp
import numpy as np
from flax import struct

from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.data.partition import NATURAL, make_partition, pack_clients

TEST_SUBSET_SEED = 0  # the fixed test subset is the same for every run and seed
# The local test splits draw from their own stream of ``data.partition_seed``
# (``local_test_seed``), never from the training partition's.
LOCAL_TEST_STREAM = 1


@struct.dataclass
class ClientData:
  """A client's examples padded to a common length; ``num_examples`` rows are real.

  Attributes:
    x: ``[max_n, ...]`` inputs (``[clients, max_n, ...]`` when stacked).
    y: ``[max_n]`` labels.
    num_examples: number of real rows (int32 scalar).
  """

  x: jnp.ndarray
  y: jnp.ndarray
  num_examples: jnp.ndarray


def client_parts(train_y: np.ndarray, data_cfg: Any) -> list[np.ndarray]:
  """Client index sets: ``data_cfg.partition`` over ``train_y``, capped per client.

  ``data_cfg`` holds ``partition``, ``num_clients``, ``partition_seed``,
  ``dirichlet_alpha``, ``shards_per_client`` and ``examples_per_client`` (0 = no cap;
  a capped client keeps a random subset drawn from ``partition_seed + 1``).
  """
  parts = make_partition(data_cfg.partition, train_y, data_cfg.num_clients,
                         data_cfg.partition_seed, alpha=data_cfg.dirichlet_alpha,
                         shards_per_client=data_cfg.shards_per_client)
  cap = data_cfg.get("examples_per_client", 0)
  if cap:
    rng = np.random.default_rng(data_cfg.partition_seed + 1)
    parts = [np.sort(rng.choice(p, size=min(len(p), cap), replace=False)) for p in parts]
  return parts


def natural_parts(sizes: Sequence[int], client_ids: Sequence[int],
                  data_cfg: Any) -> list[np.ndarray]:
  """Index sets of clients whose rows were loaded one client after another
  (``data.partition='natural'``): client ``client_ids[k]`` holds the ``sizes[k]`` rows
  after the previous ones, capped at ``data_cfg.examples_per_client`` (0 = no cap) by a
  draw of its own (seed ``(partition_seed + 1, client id)``), so a node holding one client
  keeps the rows the simulation gives it."""
  cap = data_cfg.get("examples_per_client", 0)
  ends = np.cumsum(np.asarray(sizes, np.int64))
  parts = []
  for client, end, size in zip(client_ids, ends, sizes):
    rows = np.arange(end - size, end)
    if cap and size > cap:
      rng = np.random.default_rng((int(data_cfg.partition_seed) + 1, int(client)))
      rows = np.sort(rng.choice(rows, size=cap, replace=False))
    parts.append(rows)
  return parts


def client_data(x: np.ndarray, y: np.ndarray, parts: Sequence[np.ndarray]) -> ClientData:
  """Packs the clients' rows into padded device arrays (labels int32)."""
  packed = pack_clients(x, y, parts)
  return ClientData(x=jnp.asarray(packed.x), y=jnp.asarray(packed.y, jnp.int32),
                    num_examples=jnp.asarray(packed.num_examples, jnp.int32))


def size_only_clients(sizes: Sequence[int], example: Any) -> ClientData:
  """Stand-ins for clients whose data this process does not hold (a deployment's
  server): their true sizes, and one zero row each shaped like ``example`` (an array of
  at least the example dimensions; its leading axis is ignored), never trained on."""
  example = np.asarray(example)
  x = np.zeros((len(sizes), 1) + example.shape[1:], example.dtype)
  return ClientData(x=jnp.asarray(x), y=jnp.zeros((len(sizes), 1), jnp.int32),
                    num_examples=jnp.asarray(np.asarray(sizes, np.int32)))


def test_subset_indices(num_examples: int, keep: int,
                        candidates: np.ndarray | None = None) -> np.ndarray:
  """Sorted indices of the fixed test subset: ``keep`` of them (0 or more than exist: all).

  ``candidates`` (default: all rows) restricts the draw, e.g. to labelled rows.
  """
  rows = np.arange(num_examples) if candidates is None else np.asarray(candidates)
  if not keep or keep >= len(rows):
    return rows
  return np.sort(np.random.default_rng(TEST_SUBSET_SEED).permutation(rows)[:keep])


def test_subset(x: Any, y: np.ndarray, keep: int) -> tuple[Any, np.ndarray]:
  """The fixed subset of ``keep`` test rows (``TEST_SUBSET_SEED``); 0 = every row."""
  idx = test_subset_indices(len(y), keep)
  if len(idx) == len(y):
    return x, y
  return x[idx], y[idx]


def describe_test_subset(dataset: str, num_examples: int, split_size: int) -> str:
  """The summary's ``test_split`` line: the whole test split or the fixed subset of it.

  Args:
    dataset: the dataset's name.
    num_examples: test rows kept (``test_subset``).
    split_size: rows of the whole test split (``data.test_examples=0``, or a value at
      least this large, keeps them all).

  Example:
    >>> describe_test_subset("digits", 360, 360)
    'digits test, all 360 examples'
  """
  if num_examples >= split_size:
    return f"{dataset} test, all {num_examples} examples"
  return (f"{dataset} test, fixed subset of {num_examples} of {split_size} "
          f"(permutation seed {TEST_SUBSET_SEED})")


def local_test_seed(partition_seed: int) -> int:
  """The seed of the local test splits: stream ``LOCAL_TEST_STREAM`` of ``partition_seed``
  (a ``numpy.random.SeedSequence`` child), independent of the training partition's draw."""
  sequence = np.random.SeedSequence(int(partition_seed), spawn_key=(LOCAL_TEST_STREAM,))
  return int(sequence.generate_state(1)[0])


def local_test_parts(test_y: np.ndarray, data_cfg: Any) -> list[np.ndarray]:
  """Every client's local test split: rows of the test set ``test_y``, by the training
  partition's rule on its own seed stream.

  The reproduction convenience of federated evaluation: a simulated (or reproduced)
  client holds the share of the run's test set that ``data.partition`` (with
  ``data.dirichlet_alpha`` or ``data.shards_per_client``) gives it from
  ``local_test_seed(data.partition_seed)``; ``data.examples_per_client`` (a cap on
  training examples) does not apply. The splits are disjoint, sorted, and their union is
  every row of ``test_y``, so their pooled counts are a re-grouping of the central test set.
  The natural partition (``'natural'``: the dataset's own clients, which no rule draws)
  splits the test set IID.

  Raises:
    ConfigError: the test set cannot be split so (e.g. fewer rows than clients), naming
      ``data.test_examples`` and ``data.num_clients``.
  """
  test_y = np.asarray(test_y)
  if not len(test_y):
    raise ConfigError(
        "federated evaluation (config.train.evaluation) splits the test set among the "
        f"clients, and config.data.name={data_cfg.get('name', '')!r} gives no test example "
        "here (a node whose dataset has no test split, e.g. client_folders without "
        "<config.data.source_dir>/test/): give this party the test set, or set "
        "config.train.evaluation='central'")
  rule = "iid" if data_cfg.partition == NATURAL else data_cfg.partition
  try:
    return make_partition(rule, test_y.astype(np.int64), data_cfg.num_clients,
                          local_test_seed(data_cfg.partition_seed),
                          alpha=data_cfg.dirichlet_alpha,
                          shards_per_client=data_cfg.shards_per_client)
  except ValueError as e:
    raise ConfigError(
        f"federated evaluation (config.train.evaluation) splits the {len(test_y)} test "
        f"examples (config.data.test_examples={data_cfg.get('test_examples', 0)}) among "
        f"config.data.num_clients={data_cfg.num_clients} clients by "
        f"config.data.partition={data_cfg.partition!r}, which fails: {e}") from e
