"""Label mappings on hand-made count matrices."""

import numpy as np
import pytest

from fedbbpt_jax.tasks import (SEMANTIC_FASHION_MNIST, fixed_mapping, frequency_mapping,
                               prediction_counts)


def test_prediction_counts_count_argmax_per_label():
  logits = np.zeros((4, 5))
  logits[[0, 1, 2, 3], [3, 3, 1, 4]] = 5.0
  counts = prediction_counts(logits, np.asarray([0, 0, 1, 1]), 2)
  np.testing.assert_allclose(np.round(counts), [[0, 0], [0, 1], [0, 0], [2, 0], [0, 1]])


def test_frequency_one_to_one_takes_largest_entries_without_sharing():
  counts = np.asarray([[9, 8], [7, 1], [0, 2]], float)
  m = frequency_mapping(counts, 1)
  # Source 0 -> label 0 (9 is largest); source 0 is gone, so label 1 takes source 2.
  np.testing.assert_array_equal(m, [[1, 0], [0, 0], [0, 1]])


def test_frequency_top_k_averages_k_sources_per_label():
  counts = np.asarray([[9, 0], [8, 1], [7, 0], [0, 3], [0, 2], [1, 1]], float)
  m = frequency_mapping(counts, 2)
  np.testing.assert_allclose(m.sum(0), [1.0, 1.0])
  np.testing.assert_allclose(m[:, 0], [0.5, 0.5, 0, 0, 0, 0])
  np.testing.assert_allclose(m[:, 1], [0, 0, 0, 0.5, 0.5, 0])
  with pytest.raises(ValueError, match="sources_per_target"):
    frequency_mapping(counts, 4)


def test_fixed_semantic_mapping_picks_its_imagenet_classes():
  m = fixed_mapping(SEMANTIC_FASHION_MNIST, 1000)
  logits = np.zeros((1, 1000))
  logits[0, 774] = 3.0  # sandal
  assert int(np.argmax(logits @ m)) == 5
