"""Splitting a labelled data set among federated clients.

Every partitioner is deterministic given its seed and returns one sorted
``np.ndarray`` of example indices per client; the arrays are disjoint. The
IID, Dirichlet and shard partitioners also cover every example.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NamedTuple

import numpy as np

# The partitions ``make_partition`` draws from a dataset's labels.
DRAWN_PARTITIONS: Final[tuple[str, ...]] = ("iid", "dirichlet", "shards")
# 'natural': the dataset's own clients (a dataset registered with ``natural_partition``,
# ``data/registry.py``); no partitioner draws it.
NATURAL: Final[str] = "natural"
PARTITIONS: Final[tuple[str, ...]] = DRAWN_PARTITIONS + (NATURAL,)  # data.partition's values
DEFAULT_ALPHA: Final[float] = 0.5
DEFAULT_SHARDS_PER_CLIENT: Final[int] = 2
DEFAULT_MAX_ATTEMPTS: Final[int] = 100
# The config fields (``config.data``) each partition reads beside the shared ones, with
# their defaults; a run with another partition refuses them when set.
PARTITION_READS: Final[dict[str, dict[str, float | int]]] = {
    "dirichlet": {"data.dirichlet_alpha": DEFAULT_ALPHA},
    "shards": {"data.shards_per_client": DEFAULT_SHARDS_PER_CLIENT},
}


def _as_labels(labels: np.ndarray) -> np.ndarray:
  """Returns ``labels`` as a 1-D array of non-negative integers."""
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise ValueError(f"labels must be 1-D, got shape {labels.shape}.")
  if not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"labels must be integers, got dtype {labels.dtype}.")
  if labels.size and labels.min() < 0:
    raise ValueError(f"labels must be >= 0, got {labels.min()}.")
  return labels


def _check_num_clients(num_clients: int, num_examples: int) -> None:
  """Raises ValueError unless 1 <= num_clients <= num_examples."""
  if not 1 <= num_clients <= num_examples:
    raise ValueError(
        f"num_clients must be in [1, {num_examples}] (the number of "
        f"examples), got {num_clients}."
    )


def partition_iid(
    labels: np.ndarray, num_clients: int, seed: int
) -> list[np.ndarray]:
  """Splits the examples uniformly at random into near-equal client sets.

  Args:
    labels: Integer labels ``[n]``; only their count matters here.
    num_clients: Number of clients, in ``[1, n]``.
    seed: Random seed.

  Returns:
    ``num_clients`` sorted index arrays whose sizes differ by at most 1.
  """
  labels = _as_labels(labels)
  _check_num_clients(num_clients, labels.size)
  order = np.random.default_rng(seed).permutation(labels.size)
  return [np.sort(part) for part in np.array_split(order, num_clients)]


def partition_dirichlet(
    labels: np.ndarray,
    num_clients: int,
    alpha: float,
    seed: int,
    min_examples: int = 1,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> list[np.ndarray]:
  """Splits each class among clients by Dirichlet(alpha) proportions.

  For every class, client proportions are drawn from a symmetric
  Dirichlet(``alpha``) and the shuffled examples of that class are cut
  accordingly. Small ``alpha`` concentrates each class on few clients
  (strong label skew); large ``alpha`` approaches an IID split. The whole
  draw is repeated until every client has at least ``min_examples``.

  Args:
    labels: Integer labels ``[n]``.
    num_clients: Number of clients, in ``[1, n]``.
    alpha: Dirichlet concentration, > 0.
    seed: Random seed.
    min_examples: Least number of examples each client must receive.
    max_attempts: Number of draws tried before giving up.

  Returns:
    ``num_clients`` sorted index arrays covering every example once.

  Raises:
    ValueError: On invalid arguments, or if no draw within
      ``max_attempts`` gives every client ``min_examples`` examples.
  """
  labels = _as_labels(labels)
  _check_num_clients(num_clients, labels.size)
  if not alpha > 0:
    raise ValueError(f"alpha must be > 0, got {alpha}.")
  if min_examples * num_clients > labels.size:
    raise ValueError(
        f"min_examples={min_examples} for {num_clients} clients needs "
        f"{min_examples * num_clients} examples, only {labels.size} exist."
    )
  if max_attempts < 1:
    raise ValueError(f"max_attempts must be >= 1, got {max_attempts}.")

  rng = np.random.default_rng(seed)
  class_indices = [np.flatnonzero(labels == c) for c in np.unique(labels)]
  concentration = np.full(num_clients, float(alpha))
  smallest = 0
  for _ in range(max_attempts):
    chunks: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for indices in class_indices:
      shuffled = rng.permutation(indices)
      proportions = rng.dirichlet(concentration)
      cuts = np.floor(np.cumsum(proportions)[:-1] * shuffled.size)
      pieces = np.split(shuffled, cuts.astype(np.int64))
      for client, piece in enumerate(pieces):
        chunks[client].append(piece)
    parts = [np.sort(np.concatenate(c)) for c in chunks]
    smallest = min(part.size for part in parts)
    if smallest >= min_examples:
      return parts
  raise ValueError(
      f"Dirichlet partition with alpha={alpha} gave some of {num_clients} "
      f"clients fewer than min_examples={min_examples} examples in "
      f"{max_attempts} attempts (last draw: {smallest}). Increase alpha, or "
      "reduce num_clients or min_examples."
  )


def partition_shards(
    labels: np.ndarray,
    num_clients: int,
    shards_per_client: int,
    seed: int,
) -> list[np.ndarray]:
  """Gives each client a few label-sorted shards (McMahan et al., 2017).

  The examples are sorted by label (in random order within a class), cut
  into ``num_clients * shards_per_client`` contiguous shards whose sizes
  differ by at most 1, and the shards are dealt to clients at random. Each
  client thus sees about ``shards_per_client`` labels.

  Args:
    labels: Integer labels ``[n]``.
    num_clients: Number of clients, >= 1.
    shards_per_client: Shards per client, >= 1.
    seed: Random seed.

  Returns:
    ``num_clients`` sorted index arrays covering every example once.

  Raises:
    ValueError: If there are more shards than examples.
  """
  labels = _as_labels(labels)
  if shards_per_client < 1:
    raise ValueError(
        f"shards_per_client must be >= 1, got {shards_per_client}."
    )
  _check_num_clients(num_clients, labels.size)
  num_shards = num_clients * shards_per_client
  if num_shards > labels.size:
    raise ValueError(
        f"{num_clients} clients x {shards_per_client} shards = "
        f"{num_shards} shards, more than the {labels.size} examples."
    )
  rng = np.random.default_rng(seed)
  shuffled = rng.permutation(labels.size)
  by_label = shuffled[np.argsort(labels[shuffled], kind="stable")]
  shards = np.array_split(by_label, num_shards)
  dealt = rng.permutation(num_shards).reshape(num_clients, shards_per_client)
  return [np.sort(np.concatenate([shards[s] for s in row])) for row in dealt]


def k_shot_per_class(
    labels: np.ndarray,
    indices: np.ndarray,
    k: int,
    seed: int,
) -> np.ndarray:
  """Keeps at most ``k`` random examples of each class among ``indices``.

  Args:
    labels: Integer labels ``[n]`` of the whole data set.
    indices: Indices into ``labels``, e.g. one client's partition.
    k: Most examples kept per class, >= 1.
    seed: Random seed.

  Returns:
    The sorted kept subset of ``indices``.

  Raises:
    ValueError: If ``k`` < 1.
  """
  labels = _as_labels(labels)
  if k < 1:
    raise ValueError(f"k must be >= 1, got {k}.")
  indices = np.asarray(indices, dtype=np.int64)
  rng = np.random.default_rng(seed)
  kept = [np.empty((0,), dtype=np.int64)]
  subset_labels = labels[indices]
  for c in np.unique(subset_labels):
    of_class = indices[subset_labels == c]
    if of_class.size > k:
      of_class = rng.choice(of_class, size=k, replace=False)
    kept.append(of_class)
  return np.sort(np.concatenate(kept))


def label_histograms(
    labels: np.ndarray,
    parts: Sequence[np.ndarray],
    num_classes: int,
) -> np.ndarray:
  """Counts the examples of each class held by each client.

  Args:
    labels: Integer labels ``[n]`` in ``[0, num_classes)``.
    parts: One index array per client.
    num_classes: Number of classes.

  Returns:
    int64 counts ``[len(parts), num_classes]``.

  Raises:
    ValueError: If a label is >= ``num_classes``.
  """
  labels = _as_labels(labels)
  if labels.size and labels.max() >= num_classes:
    raise ValueError(
        f"label {labels.max()} is out of range for {num_classes} classes."
    )
  counts = np.zeros((len(parts), num_classes), dtype=np.int64)
  for client, part in enumerate(parts):
    counts[client] = np.bincount(
        labels[np.asarray(part, dtype=np.int64)], minlength=num_classes
    )
  return counts


def make_partition(
    name: str,
    labels: np.ndarray,
    num_clients: int,
    seed: int,
    *,
    alpha: float = DEFAULT_ALPHA,
    shards_per_client: int = DEFAULT_SHARDS_PER_CLIENT,
    k_shot: int | None = None,
) -> list[np.ndarray]:
  """Partitions examples among clients with the partitioner called ``name``.

  Args:
    name: ``'iid'``, ``'dirichlet'`` or ``'shards'`` (``PARTITIONS`` also holds
      ``'natural'``, which no partitioner draws).
    labels: Integer labels ``[n]``.
    num_clients: Number of clients.
    seed: Random seed of the partition and of the k-shot subsampling.
    alpha: Dirichlet concentration (``'dirichlet'`` only).
    shards_per_client: Shards per client (``'shards'`` only).
    k_shot: If set, each client then keeps at most ``k_shot`` examples of
      each class.

  Returns:
    One sorted index array per client, disjoint.

  Raises:
    ValueError: If ``name`` is unknown (the message lists the allowed
      names) or the partitioner rejects its arguments.
  """
  if name == "iid":
    parts = partition_iid(labels, num_clients, seed)
  elif name == "dirichlet":
    parts = partition_dirichlet(labels, num_clients, alpha, seed)
  elif name == "shards":
    parts = partition_shards(labels, num_clients, shards_per_client, seed)
  elif name == NATURAL:
    raise ValueError(f"partition {NATURAL!r} is the dataset's own clients: no partitioner "
                     "draws it (the task family loads each client from its dataset)")
  else:
    raise ValueError(
        f"Unknown partition {name!r}; expected one of {list(DRAWN_PARTITIONS)}."
    )
  if k_shot is None:
    return parts
  # Independent, reproducible sampling stream per client.
  client_seeds = np.random.SeedSequence(seed).generate_state(len(parts))
  return [
      k_shot_per_class(labels, part, k_shot, int(client_seed))
      for part, client_seed in zip(parts, client_seeds)
  ]


class PackedClients(NamedTuple):
  """Client data stacked into fixed-shape, zero-padded arrays.

  Being a NamedTuple of arrays, it is a JAX pytree as is.

  Attributes:
    x: Inputs ``[C, max_n, ...]``; rows past ``num_examples[c]`` are 0.
    y: Labels ``[C, max_n]``; padding is 0.
    num_examples: Number of real examples per client, int32 ``[C]``.
  """

  x: np.ndarray
  y: np.ndarray
  num_examples: np.ndarray


def pack_clients(
    x: np.ndarray,
    y: np.ndarray,
    parts: Sequence[np.ndarray],
) -> PackedClients:
  """Gathers each client's examples into padded ``[C, max_n, ...]`` arrays.

  Args:
    x: Inputs ``[n, ...]`` of the whole data set.
    y: Labels ``[n]``.
    parts: One index array per client.

  Returns:
    The packed clients; ``max_n`` is the largest client size.

  Raises:
    ValueError: If ``x`` and ``y`` disagree on ``n`` or ``parts`` is empty.
  """
  x = np.asarray(x)
  y = np.asarray(y)
  if x.shape[:1] != y.shape or y.ndim != 1:
    raise ValueError(
        f"x [n, ...] and y [n] must match, got {x.shape} and {y.shape}."
    )
  if not parts:
    raise ValueError("parts must name at least one client.")
  sizes = np.array([len(part) for part in parts], dtype=np.int32)
  max_n = int(sizes.max())
  packed_x = np.zeros((len(parts), max_n, *x.shape[1:]), dtype=x.dtype)
  packed_y = np.zeros((len(parts), max_n), dtype=y.dtype)
  for client, part in enumerate(parts):
    part = np.asarray(part, dtype=np.int64)
    packed_x[client, : part.size] = x[part]
    packed_y[client, : part.size] = y[part]
  return PackedClients(x=packed_x, y=packed_y, num_examples=sizes)
