"""Macro-F1, per-class recall and the majority-collapse flag against scikit-learn."""

import numpy as np
from sklearn.metrics import f1_score, recall_score

from fedbbpt_jax.tasks.classification_metrics import classification_report


def test_report_matches_scikit_learn_and_flags_collapse():
  rng = np.random.default_rng(0)
  y = rng.integers(0, 4, size=200)
  pred = np.where(rng.uniform(size=200) < 0.6, y, rng.integers(0, 5, size=200))
  rep = classification_report(y, pred, np.ones(200), num_classes=5)
  assert abs(rep["macro_f1"] - f1_score(y, pred, average="macro")) < 1e-12
  np.testing.assert_allclose(rep["per_class_recall"][:4],
                             recall_score(y, pred, average=None, labels=[0, 1, 2, 3]))
  assert rep["per_class_recall"][4] is None          # class 4 never in the labels
  assert rep["accuracy"] == np.mean(y == pred) and not rep["collapsed_to_majority"]
  collapsed = classification_report(y, np.where(np.arange(200) < 185, 2, y), np.ones(200), 5)
  assert collapsed["collapsed_to_majority"] and collapsed["max_prediction_share"] > 0.9
  # One class in the labels (the instruction family): nothing to collapse onto.
  single = classification_report(np.ones(50, int), np.ones(50, int), np.zeros(50), 2)
  assert single["max_prediction_share"] == 1.0 and not single["collapsed_to_majority"]
