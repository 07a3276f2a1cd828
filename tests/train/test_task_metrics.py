"""GLUE task metrics: hand-computed values, then scikit-learn on random predictions."""

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score, matthews_corrcoef as sk_mcc

from fedbbpt_jax.tasks.glue.metrics import (accuracy, matthews_corrcoef, positive_f1,
                                            task_metric)


def test_hand_computed_values():
  y = np.array([1, 1, 1, 0, 0, 0, 0, 1])
  p = np.array([1, 1, 0, 1, 0, 0, 0, 0])
  # TP 2, FN 2, FP 1, TN 3.
  assert positive_f1(y, p) == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))              # 4/7
  assert positive_f1(y, p, positive=0) == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))   # 6/9
  assert matthews_corrcoef(y, p) == pytest.approx((2 * 3 - 1 * 2) / math.sqrt(3 * 4 * 4 * 5))
  assert accuracy(y, p) == 5 / 8
  assert task_metric("f1", y, p) == positive_f1(y, p)
  # Degenerate cases: constant predictions, no positive class anywhere, perfect and inverted.
  assert matthews_corrcoef(y, np.zeros_like(y)) == 0.0
  assert positive_f1(np.zeros(4, int), np.zeros(4, int)) == 0.0
  assert matthews_corrcoef(y, y) == pytest.approx(1.0)
  assert matthews_corrcoef(y, 1 - y) == pytest.approx(-1.0)
  # Three classes: C = [[2,1,0],[0,1,1],[1,0,2]], n 8, trace 5, t = (3,2,3), p = (3,2,3).
  y3 = np.array([0, 0, 0, 1, 1, 2, 2, 2])
  p3 = np.array([0, 0, 1, 1, 2, 2, 2, 0])
  want = (5 * 8 - (9 + 4 + 9)) / math.sqrt((64 - 22) * (64 - 22))
  assert matthews_corrcoef(y3, p3) == pytest.approx(want)
  with pytest.raises(ValueError, match="unknown task metric 'auc'"):
    task_metric("auc", y, p)


def test_matches_scikit_learn():
  rng = np.random.default_rng(0)
  for n_classes in (2, 3):
    y = rng.integers(0, n_classes, 300)
    p = np.where(rng.uniform(size=300) < 0.5, y, rng.integers(0, n_classes, 300))
    assert matthews_corrcoef(y, p) == pytest.approx(sk_mcc(y, p), abs=1e-12)
  y = rng.integers(0, 2, 300)
  p = rng.integers(0, 2, 300)
  assert positive_f1(y, p) == pytest.approx(f1_score(y, p), abs=1e-12)
