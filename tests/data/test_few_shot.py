"""BDPL's k-shot protocol and FedOne's federated form: exact counts, disjointness, seeds."""

import numpy as np
import pytest

from fedbbpt_jax.data.few_shot import FewShotError, k_shot_clients, k_shot_train_dev

LABELS = np.repeat(np.arange(3), [40, 25, 60])


def test_exactly_k_per_class_disjoint_and_from_opposite_halves():
  train, dev = k_shot_train_dev(LABELS, k=8, seed=42)
  for idx in (train, dev):
    np.testing.assert_array_equal(np.bincount(LABELS[idx], minlength=3), [8, 8, 8])
    assert np.all(np.diff(idx) > 0)                       # sorted, no repeats
  assert not set(train) & set(dev)
  # The halves: the seed's permutation cut in two; train comes from the first half only.
  order = np.random.default_rng(42).permutation(np.arange(len(LABELS)))
  first = set(order[:len(LABELS) // 2])
  assert set(train) <= first and not set(dev) & first


def test_deterministic_from_the_seed():
  a = k_shot_train_dev(LABELS, k=5, seed=7)
  b = k_shot_train_dev(LABELS, k=5, seed=7)
  c = k_shot_train_dev(LABELS, k=5, seed=8)
  np.testing.assert_array_equal(a[0], b[0])
  np.testing.assert_array_equal(a[1], b[1])
  assert not np.array_equal(a[0], c[0])


def test_unlabelled_rows_never_drawn_and_short_class_reported():
  labels = np.concatenate([LABELS, -np.ones(50, np.int64)])
  train, dev = k_shot_train_dev(labels, k=4, seed=0)
  assert (labels[train] >= 0).all() and (labels[dev] >= 0).all()
  with pytest.raises(FewShotError, match="class 1 has .* examples in the .* half.*k=20"):
    k_shot_train_dev(LABELS, k=20, seed=0)
  with pytest.raises(FewShotError, match="class 2 has 0"):
    k_shot_train_dev(np.repeat([0, 1], 30), k=2, seed=0, num_classes=3)


@pytest.mark.parametrize("partition", ["iid", "dirichlet"])
def test_k_times_clients_then_partitioned(partition):
  few = k_shot_clients(LABELS, k=2, num_clients=4, seed=3, partition=partition, alpha=1.0)
  np.testing.assert_array_equal(np.bincount(LABELS[few.train], minlength=3), [8, 8, 8])
  np.testing.assert_array_equal(np.bincount(LABELS[few.dev], minlength=3), [8, 8, 8])
  assert len(few.parts) == 4 and all(len(p) for p in few.parts)
  np.testing.assert_array_equal(np.sort(np.concatenate(few.parts)), few.train)
  again = k_shot_clients(LABELS, k=2, num_clients=4, seed=3, partition=partition, alpha=1.0)
  for p, q in zip(few.parts, again.parts):
    np.testing.assert_array_equal(p, q)
