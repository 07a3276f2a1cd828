"""BDPL's k-shot protocol and its federated form (FedOne; docs/algorithms.md, "BDPL").

The labelled train split is shuffled and halved; ``k`` examples of every class
are drawn from the first half as the train set and ``k`` from the second half as
the dev set, so the two are disjoint. The test set is the task's public
validation split (GLUE's test labels are hidden). FedOne multiplies ``k`` by
the number of clients before sampling and then partitions the train set among
the clients (``k_shot_clients``), so each client holds about a k-shot set.

Everything is a pure function of the labels and a seed.

Example:
    >>> train_idx, dev_idx = k_shot_train_dev(labels, k=16, seed=42)
    >>> np.bincount(labels[train_idx])           # [16, 16]
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from fedbbpt_jax.data.partition import make_partition


class FewShotError(ValueError):
  """A class has fewer examples than the k-shot protocol needs."""


def _exactly_k(labels: np.ndarray, pool: np.ndarray, classes: np.ndarray, k: int,
               rng: np.random.Generator, half: str) -> np.ndarray:
  kept = []
  for c in classes:
    of_class = pool[labels[pool] == c]
    if of_class.size < k:
      raise FewShotError(f"class {int(c)} has {of_class.size} examples in the {half} half of the "
                         f"train split; the k-shot protocol needs k={k}")
    kept.append(rng.choice(of_class, size=k, replace=False))
  return np.sort(np.concatenate(kept)).astype(np.int64)


def k_shot_train_dev(labels: np.ndarray, k: int, seed: int,
                     num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Indices of ``k`` train and ``k`` dev examples per class, from disjoint halves.

  Args:
    labels: int labels ``[n]`` of the whole train split (negative = unlabelled, never drawn).
    k: examples per class in each of train and dev (>= 1).
    seed: seed of the halving and of the draws.
    num_classes: classes to draw (``0..num_classes-1``); default those present.

  Returns:
    ``(train_idx, dev_idx)``, sorted int64 indices into ``labels``, disjoint,
    each with exactly ``k`` examples of every class.

  Raises:
    FewShotError: if a class has fewer than ``k`` examples in either half.
  """
  if k < 1:
    raise ValueError(f"k must be >= 1, got {k}")
  labels = np.asarray(labels, np.int64)
  labelled = np.flatnonzero(labels >= 0)
  classes = (np.unique(labels[labelled]) if num_classes is None
             else np.arange(num_classes, dtype=np.int64))
  rng = np.random.default_rng(seed)
  order = rng.permutation(labelled)
  first, second = order[:order.size // 2], order[order.size // 2:]
  return (_exactly_k(labels, first, classes, k, rng, "first"),
          _exactly_k(labels, second, classes, k, rng, "second"))


class FewShotClients(NamedTuple):
  """The federated k-shot split.

  Attributes:
    train: all clients' train indices (``k * num_clients`` per class), sorted.
    dev: the server's dev indices (``k * num_clients`` per class), sorted.
    parts: one sorted index array per client (into the whole split), disjoint,
      together ``train``.
  """

  train: np.ndarray
  dev: np.ndarray
  parts: list[np.ndarray]


def k_shot_clients(labels: np.ndarray, k: int, num_clients: int, seed: int, partition: str,
                   *, alpha: float = 0.5, shards_per_client: int = 2,
                   num_classes: int | None = None,
                   partition_seed: int | None = None) -> FewShotClients:
  """FedOne's data: ``k * num_clients`` per class for train and dev, train partitioned.

  Args:
    labels: int labels ``[n]`` of the train split.
    k: shots per class per client.
    num_clients: number of clients.
    seed: seed of the halving and the k-shot draws.
    partition: ``'iid'``, ``'dirichlet'`` (label skew, ``alpha``) or ``'shards'``.
    partition_seed: seed of the partition (default ``seed``).
  """
  labels = np.asarray(labels, np.int64)
  train, dev = k_shot_train_dev(labels, k * num_clients, seed, num_classes)
  part_seed = seed if partition_seed is None else partition_seed
  local = make_partition(partition, labels[train], num_clients, part_seed, alpha=alpha,
                         shards_per_client=shards_per_client)
  return FewShotClients(train, dev, [np.sort(train[p]) for p in local])
