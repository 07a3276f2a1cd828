"""Classification metrics from predictions: confusion matrix, macro-F1, recall, collapse.

Accuracy alone misleads on imbalanced sets: a prompt that makes the black box
answer the majority class for everything can gain accuracy while learning
nothing (drug-review sentiment prompts collapse to "positive": docs/tracks/text.md). Every
evaluation therefore reports macro-F1, per-class recall and whether one class
takes more than ``COLLAPSE_SHARE`` of the predictions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

COLLAPSE_SHARE = 0.9


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
  """``[C, C]`` counts; row = true class, column = predicted class."""
  cm = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(cm, (np.asarray(labels, np.int64), np.asarray(predictions, np.int64)), 1)
  return cm


def per_class_recall(cm: np.ndarray) -> np.ndarray:
  """Recall of every class (NaN for a class absent from the labels)."""
  support = cm.sum(axis=1)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def macro_f1(cm: np.ndarray) -> float:
  """Unweighted mean F1 over the classes present in the labels or the predictions.

  A class with no true positives scores 0 (scikit-learn's ``f1_score(average='macro')``).
  """
  tp = np.diag(cm).astype(np.float64)
  support, predicted = cm.sum(axis=1), cm.sum(axis=0)
  present = (support + predicted) > 0
  denom = support + predicted
  f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
  return float(f1[present].mean()) if present.any() else 0.0


def classification_report(labels: np.ndarray, predictions: np.ndarray, losses: np.ndarray,
                          num_classes: int) -> dict[str, Any]:
  """Accuracy, mean loss, macro-F1, per-class recall, prediction shares and collapse flag.

  Returns:
    ``{"accuracy", "loss", "macro_f1", "per_class_recall" (list, None for absent
    classes), "prediction_counts" (list), "max_prediction_share",
    "collapsed_to_majority"}``.
  """
  labels, predictions = np.asarray(labels), np.asarray(predictions)
  n = len(labels)
  cm = confusion_matrix(labels, predictions, num_classes)
  recall = per_class_recall(cm)
  counts = cm.sum(axis=0)
  share = float(counts.max() / max(n, 1))
  return {
      "accuracy": float(np.mean(labels == predictions)) if n else 0.0,
      "loss": float(np.mean(losses)) if n else 0.0,
      "macro_f1": macro_f1(cm),
      "per_class_recall": [None if np.isnan(r) else float(r) for r in recall],
      "prediction_counts": [int(c) for c in counts],
      "max_prediction_share": share,
      # Only a test set with more than one class can collapse onto one of them (the
      # instruction family's examples are all label 1, "answered right").
      "collapsed_to_majority": bool(share > COLLAPSE_SHARE and len(np.unique(labels)) > 1),
  }
