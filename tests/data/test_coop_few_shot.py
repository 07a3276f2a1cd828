"""CoOp's few-shot protocol: exact counts, disjointness, seeds, val = min(k, 4), clients."""

import numpy as np
import pytest

from fedbbpt_jax.data.coop_few_shot import coop_few_shot, split_among_clients
from fedbbpt_jax.data.few_shot import FewShotError
from fedbbpt_jax.data.partition import label_histograms

TRAIN = np.random.default_rng(0).permutation(np.repeat(np.arange(4), [30, 20, 25, 40]))
VAL = np.repeat(np.arange(4), [6, 5, 9, 7])
NAMES = ("abyssinian", "beagle", "boxer", "pug")


@pytest.mark.parametrize("k, val_k", [(1, 1), (4, 4), (16, 4)])
def test_k_train_and_min_k_4_val_per_class_from_their_splits(k, val_k):
  split = coop_few_shot(TRAIN, k, seed=1, num_classes=4, val_labels=VAL)
  np.testing.assert_array_equal(np.bincount(TRAIN[split.train], minlength=4), [k] * 4)
  np.testing.assert_array_equal(np.bincount(VAL[split.val], minlength=4), [val_k] * 4)
  assert not split.val_from_train
  for idx in (split.train, split.val):
    assert np.all(np.diff(idx) > 0)  # sorted, no repeats


def test_without_a_val_split_val_comes_from_the_train_rows_outside_the_k_shot_set():
  split = coop_few_shot(TRAIN, 16, seed=1, num_classes=4)
  assert split.val_from_train
  np.testing.assert_array_equal(np.bincount(TRAIN[split.val], minlength=4), [4] * 4)
  assert not set(split.train) & set(split.val)


def test_the_seed_determines_the_draw():
  a = coop_few_shot(TRAIN, 8, seed=3, num_classes=4, val_labels=VAL)
  b = coop_few_shot(TRAIN, 8, seed=3, num_classes=4, val_labels=VAL)
  c = coop_few_shot(TRAIN, 8, seed=4, num_classes=4, val_labels=VAL)
  np.testing.assert_array_equal(a.train, b.train)
  np.testing.assert_array_equal(a.val, b.val)
  assert not np.array_equal(a.train, c.train)


def test_a_class_short_of_k_is_named_unless_fewer_are_allowed():
  with pytest.raises(FewShotError, match=r"^class 1 \('beagle'\) has 20 images in train.json "
                                         r"split 'train'; the 21-shot protocol needs 21$"):
    coop_few_shot(TRAIN, 21, seed=0, num_classes=4, val_labels=VAL, class_names=NAMES,
                  where="train.json split 'train'")
  with pytest.raises(FewShotError, match=r"class 1 \('beagle'\) has 3 images in val.json; "
                                         r"the 4-shot protocol needs 4"):
    coop_few_shot(TRAIN, 16, seed=0, num_classes=4,  # val draws min(16, 4) = 4
                  val_labels=np.repeat(np.arange(4), [5, 3, 5, 5]), class_names=NAMES,
                  val_where="val.json")
  with pytest.raises(FewShotError, match="class 4 has 0 images"):
    coop_few_shot(TRAIN, 1, seed=0, num_classes=5)
  fewer = coop_few_shot(TRAIN, 25, seed=0, num_classes=4, val_labels=VAL, allow_fewer=True)
  np.testing.assert_array_equal(np.bincount(TRAIN[fewer.train]), [25, 20, 25, 25])


def test_zero_shots_keeps_every_train_and_val_row():
  split = coop_few_shot(TRAIN, 0, seed=0, num_classes=4, val_labels=VAL)
  np.testing.assert_array_equal(split.train, np.arange(TRAIN.size))
  np.testing.assert_array_equal(split.val, np.arange(VAL.size))


@pytest.mark.parametrize("partition", ["iid", "dirichlet"])
def test_the_k_shot_set_split_among_clients(partition):
  split = coop_few_shot(TRAIN, 16, seed=1, num_classes=4)
  labels = TRAIN[split.train]
  parts = split_among_clients(labels, 4, partition, seed=7, alpha=1.0)
  np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(64))
  counts = label_histograms(labels, parts, 4)
  np.testing.assert_array_equal(counts.sum(axis=0), [16] * 4)  # every shot held by one client
  if partition == "iid":
    assert [len(p) for p in parts] == [16] * 4  # 64 shots / 4 clients, 4 per class on average
  again = split_among_clients(labels, 4, partition, seed=7, alpha=1.0)
  for p, q in zip(parts, again):
    np.testing.assert_array_equal(p, q)
