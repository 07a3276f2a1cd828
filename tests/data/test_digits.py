"""Tests for fedbbpt_jax.data.digits."""

from __future__ import annotations

import numpy as np
import pytest

from fedbbpt_jax.data.digits import load_digits_dataset

NUM_DIGITS = 1797


def test_shapes_dtypes_and_range() -> None:
  data = load_digits_dataset()
  train_x, train_y = data["train"]
  test_x, test_y = data["test"]
  assert set(data) == {"train", "test"}
  assert train_x.shape[1:] == test_x.shape[1:] == (8, 8)
  assert train_x.dtype == test_x.dtype == np.uint8
  assert train_y.dtype == test_y.dtype == np.int32
  assert train_x.shape[0] + test_x.shape[0] == NUM_DIGITS
  assert test_x.shape[0] == pytest.approx(0.25 * NUM_DIGITS, abs=1)
  assert train_x.max() == 255
  assert train_x.min() == 0
  assert set(np.unique(train_y)) == set(range(10))


def test_split_is_stratified() -> None:
  data = load_digits_dataset(test_fraction=0.5)
  train_counts = np.bincount(data["train"][1], minlength=10)
  test_counts = np.bincount(data["test"][1], minlength=10)
  # Each class (174 to 183 examples) is split in half, up to rounding.
  assert np.all(np.abs(train_counts - test_counts) <= 1)


def test_split_is_deterministic() -> None:
  first = load_digits_dataset(seed=1)
  again = load_digits_dataset(seed=1)
  other = load_digits_dataset(seed=2)
  np.testing.assert_array_equal(first["test"][0], again["test"][0])
  np.testing.assert_array_equal(first["train"][1], again["train"][1])
  assert not np.array_equal(first["test"][0], other["test"][0])


def test_rejects_bad_fraction() -> None:
  with pytest.raises(ValueError, match="test_fraction"):
    load_digits_dataset(test_fraction=1.0)
