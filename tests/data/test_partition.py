"""Tests for fedbbpt_jax.data.partition."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from fedbbpt_jax.data import partition as P

NUM_CLASSES = 10
PER_CLASS = 600
NUM_CLIENTS = 20

Partitioner = Callable[[np.ndarray, int, int], list[np.ndarray]]

PARTITIONERS: dict[str, Partitioner] = {
    "iid": P.partition_iid,
    "dirichlet": lambda y, c, s: P.partition_dirichlet(y, c, 0.5, s),
    "shards": lambda y, c, s: P.partition_shards(y, c, 2, s),
}


@pytest.fixture(name="labels")
def _labels() -> np.ndarray:
  """10 balanced classes of 600 examples, in shuffled order."""
  labels = np.repeat(np.arange(NUM_CLASSES), PER_CLASS).astype(np.int32)
  return np.random.default_rng(123).permutation(labels)


def _max_class_fraction(labels: np.ndarray, parts: list[np.ndarray]) -> float:
  """Mean over clients of the share of the client's most frequent class."""
  hist = P.label_histograms(labels, parts, NUM_CLASSES)
  return float(np.mean(hist.max(axis=1) / hist.sum(axis=1)))


@pytest.mark.parametrize("name", sorted(PARTITIONERS))
def test_covers_every_index_once(name: str, labels: np.ndarray) -> None:
  parts = PARTITIONERS[name](labels, NUM_CLIENTS, 0)
  assert len(parts) == NUM_CLIENTS
  for part in parts:
    assert part.ndim == 1
    assert np.issubdtype(part.dtype, np.integer)
    assert np.all(np.diff(part) > 0)  # Sorted, no duplicates.
    assert part.size >= 1
  np.testing.assert_array_equal(
      np.sort(np.concatenate(parts)), np.arange(labels.size)
  )


@pytest.mark.parametrize("name", sorted(PARTITIONERS))
def test_seed_determinism(name: str, labels: np.ndarray) -> None:
  first = PARTITIONERS[name](labels, NUM_CLIENTS, 7)
  again = PARTITIONERS[name](labels, NUM_CLIENTS, 7)
  other = PARTITIONERS[name](labels, NUM_CLIENTS, 8)
  assert all(np.array_equal(a, b) for a, b in zip(first, again))
  assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_iid_sizes_and_balance(labels: np.ndarray) -> None:
  parts = P.partition_iid(labels, NUM_CLIENTS, 0)
  sizes = [part.size for part in parts]
  assert max(sizes) - min(sizes) <= 1
  assert sum(sizes) == labels.size
  assert _max_class_fraction(labels, parts) < 0.25


def test_dirichlet_small_alpha_is_skewed(labels: np.ndarray) -> None:
  # The mean max-class fraction under alpha=0.1 grows with the number of
  # clients (about 0.59 for 10, 0.63 for 20, 0.66 for 50); averaging 3
  # seeds at 50 clients keeps the check well clear of the 0.6 bound.
  fractions = [
      _max_class_fraction(
          labels, P.partition_dirichlet(labels, 50, 0.1, seed=seed)
      )
      for seed in range(3)
  ]
  assert np.mean(fractions) > 0.6
  assert min(fractions) > 0.5


def test_dirichlet_large_alpha_is_near_uniform(labels: np.ndarray) -> None:
  parts = P.partition_dirichlet(labels, NUM_CLIENTS, 1000.0, seed=0)
  assert _max_class_fraction(labels, parts) < 0.2
  sizes = np.array([part.size for part in parts])
  assert sizes.min() > 0.8 * labels.size / NUM_CLIENTS


def test_dirichlet_min_examples(labels: np.ndarray) -> None:
  parts = P.partition_dirichlet(
      labels, NUM_CLIENTS, 0.1, seed=3, min_examples=50
  )
  assert min(part.size for part in parts) >= 50


def test_dirichlet_gives_up_with_clear_error(labels: np.ndarray) -> None:
  # 6000 examples over 20 clients average 300 each; 290 each under a very
  # skewed draw is (practically) never met.
  with pytest.raises(ValueError, match="min_examples=290.*3 attempts"):
    P.partition_dirichlet(
        labels, NUM_CLIENTS, 0.01, seed=0, min_examples=290, max_attempts=3
    )


def test_dirichlet_impossible_min_examples(labels: np.ndarray) -> None:
  with pytest.raises(ValueError, match="min_examples"):
    P.partition_dirichlet(labels, NUM_CLIENTS, 1.0, 0, min_examples=301)


def test_shards_two_per_client_gives_at_most_two_labels(
    labels: np.ndarray,
) -> None:
  # 6000 examples / (20 clients x 2 shards) = shards of 150; 600 per class
  # is a whole number of shards, so no shard straddles two classes.
  parts = P.partition_shards(labels, NUM_CLIENTS, 2, seed=0)
  hist = P.label_histograms(labels, parts, NUM_CLASSES)
  assert np.all((hist > 0).sum(axis=1) <= 2)
  assert all(part.size == 300 for part in parts)
  assert np.all(hist % 150 == 0)


def test_shards_rejects_too_many_shards() -> None:
  with pytest.raises(ValueError, match="shards"):
    P.partition_shards(np.zeros(10, dtype=np.int32), 6, 2, seed=0)


def test_k_shot_per_class(labels: np.ndarray) -> None:
  part = P.partition_iid(labels, 4, seed=0)[0]
  kept = P.k_shot_per_class(labels, part, k=5, seed=0)
  assert np.all(np.isin(kept, part))
  assert np.all(np.diff(kept) > 0)
  counts = np.bincount(labels[kept], minlength=NUM_CLASSES)
  np.testing.assert_array_equal(counts, np.full(NUM_CLASSES, 5))
  np.testing.assert_array_equal(
      kept, P.k_shot_per_class(labels, part, k=5, seed=0)
  )
  assert not np.array_equal(
      kept, P.k_shot_per_class(labels, part, k=5, seed=1)
  )


def test_k_shot_keeps_small_classes_whole() -> None:
  labels = np.array([0, 0, 0, 1, 2, 2], dtype=np.int32)
  kept = P.k_shot_per_class(labels, np.arange(6), k=2, seed=0)
  counts = np.bincount(labels[kept], minlength=3)
  np.testing.assert_array_equal(counts, [2, 1, 2])


def test_label_histograms() -> None:
  labels = np.array([0, 1, 1, 2, 2, 2])
  parts = [np.array([0, 3]), np.array([1, 2, 4, 5])]
  hist = P.label_histograms(labels, parts, 4)
  np.testing.assert_array_equal(hist, [[1, 0, 1, 0], [0, 2, 2, 0]])
  assert hist.shape == (2, 4)


@pytest.mark.parametrize("name", P.DRAWN_PARTITIONS)
def test_make_partition_dispatches(name: str, labels: np.ndarray) -> None:
  parts = P.make_partition(name, labels, NUM_CLIENTS, seed=0)
  expected = PARTITIONERS[name](labels, NUM_CLIENTS, 0)
  if name == "dirichlet":  # make_partition's default alpha.
    expected = P.partition_dirichlet(
        labels, NUM_CLIENTS, P.DEFAULT_ALPHA, 0
    )
  assert all(np.array_equal(a, b) for a, b in zip(parts, expected))


def test_no_partitioner_draws_the_natural_partition(labels: np.ndarray) -> None:
  assert P.PARTITIONS == P.DRAWN_PARTITIONS + ("natural",)
  with pytest.raises(ValueError, match="'natural' is the dataset's own clients"):
    P.make_partition("natural", labels, NUM_CLIENTS, seed=0)


def test_make_partition_k_shot(labels: np.ndarray) -> None:
  parts = P.make_partition("iid", labels, NUM_CLIENTS, seed=0, k_shot=3)
  assert len(parts) == NUM_CLIENTS
  hist = P.label_histograms(labels, parts, NUM_CLASSES)
  assert hist.max() <= 3
  assert hist.sum() == NUM_CLIENTS * NUM_CLASSES * 3  # 30/class/client.
  assert np.unique(np.concatenate(parts)).size == hist.sum()


def test_make_partition_unknown_name(labels: np.ndarray) -> None:
  with pytest.raises(ValueError, match="'iid', 'dirichlet', 'shards'"):
    P.make_partition("pathological", labels, NUM_CLIENTS, seed=0)


def test_pack_clients_shapes_and_padding() -> None:
  x = np.arange(6 * 2 * 3, dtype=np.float32).reshape(6, 2, 3) + 1
  y = np.array([5, 6, 7, 8, 9, 4], dtype=np.int32)
  parts = [np.array([0, 2, 4]), np.array([5]), np.array([1, 3])]
  packed = P.pack_clients(x, y, parts)
  assert isinstance(packed, P.PackedClients)
  assert packed.x.shape == (3, 3, 2, 3)
  assert packed.x.dtype == np.float32
  assert packed.y.shape == (3, 3)
  assert packed.num_examples.dtype == np.int32
  np.testing.assert_array_equal(packed.num_examples, [3, 1, 2])
  for client, part in enumerate(parts):
    n = part.size
    np.testing.assert_array_equal(packed.x[client, :n], x[part])
    np.testing.assert_array_equal(packed.y[client, :n], y[part])
    assert np.all(packed.x[client, n:] == 0)
    assert np.all(packed.y[client, n:] == 0)


def test_pack_clients_rejects_mismatch() -> None:
  with pytest.raises(ValueError, match="must match"):
    P.pack_clients(np.zeros((3, 2)), np.zeros(4), [np.array([0])])
