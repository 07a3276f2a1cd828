"""Federated client data: partition -> cap -> pack -> ``ClientData``, and the test subset.

Every task family turns its training examples into clients the same way, so the
steps live here once:

    parts = client_parts(train_y, config.data)          # partition + per-client cap
    clients = client_data(train_x, train_y, parts)      # [C, max_n, ...] + true sizes
    test_x, test_y = test_subset(test_x, test_y, config.data.test_examples)
"""

from __future__ import annotations

from typing import Any, Sequence

import jax.numpy as jnp
import numpy as np
from flax import struct

from fedbbpt_jax.data.partition import make_partition, pack_clients

TEST_SUBSET_SEED = 0  # the fixed test subset is the same for every run and seed


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


def client_data(x: np.ndarray, y: np.ndarray, parts: Sequence[np.ndarray]) -> ClientData:
  """Packs the clients' rows into padded device arrays (labels int32)."""
  packed = pack_clients(x, y, parts)
  return ClientData(x=jnp.asarray(packed.x), y=jnp.asarray(packed.y, jnp.int32),
                    num_examples=jnp.asarray(packed.num_examples, jnp.int32))


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
