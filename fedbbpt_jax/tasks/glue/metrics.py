"""GLUE's per-task test metrics from labels and predictions (pure numpy).

BDPL (Diao et al., TMLR 2023) reports Matthews correlation for CoLA, F1 of the
positive class (label 1) for MRPC and QQP, accuracy for the other tasks. Every
evaluation of a task that names a metric reports it beside accuracy and
macro-F1 (``tasks.evaluation.Evaluator.report``).

Example:
    >>> task_metric("f1", np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]))
    0.5
"""

from __future__ import annotations

from typing import Callable

import numpy as np

TASK_METRICS = ("accuracy", "f1", "matthews")


def accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
  """Fraction of predictions equal to the labels (0 on an empty set)."""
  labels, predictions = np.asarray(labels), np.asarray(predictions)
  return float(np.mean(labels == predictions)) if labels.size else 0.0


def positive_f1(labels: np.ndarray, predictions: np.ndarray, positive: int = 1) -> float:
  """F1 of class ``positive``: 2 TP / (2 TP + FP + FN); 0 when the class is never seen.

  Equals scikit-learn's ``f1_score(labels, predictions, pos_label=positive)``
  (binary average) with ``zero_division=0``.
  """
  labels, predictions = np.asarray(labels), np.asarray(predictions)
  tp = int(np.sum((labels == positive) & (predictions == positive)))
  fp = int(np.sum((labels != positive) & (predictions == positive)))
  fn = int(np.sum((labels == positive) & (predictions != positive)))
  denom = 2 * tp + fp + fn
  return 2.0 * tp / denom if denom else 0.0


def matthews_corrcoef(labels: np.ndarray, predictions: np.ndarray) -> float:
  """Matthews correlation (multi-class form of Gorodkin 2004); 0 when undefined.

  With confusion matrix ``C``, ``t_k`` true and ``p_k`` predicted counts of class
  ``k``, ``c = trace(C)`` and ``s = n``::

      MCC = (c s - t.p) / sqrt((s^2 - p.p) (s^2 - t.t))

  which for two classes is (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)).
  A constant prediction (or constant labels) gives 0, as in scikit-learn.
  """
  labels = np.asarray(labels, np.int64)
  predictions = np.asarray(predictions, np.int64)
  if labels.size == 0:
    return 0.0
  classes, inverse = np.unique(np.concatenate([labels, predictions]), return_inverse=True)
  k = len(classes)
  cm = np.zeros((k, k), np.float64)
  np.add.at(cm, (inverse[:labels.size], inverse[labels.size:]), 1.0)
  t, p = cm.sum(axis=1), cm.sum(axis=0)
  s, c = cm.sum(), np.trace(cm)
  denom = np.sqrt((s * s - p @ p) * (s * s - t @ t))
  return float((c * s - t @ p) / denom) if denom > 0 else 0.0


_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": accuracy, "f1": positive_f1, "matthews": matthews_corrcoef}


def task_metric(name: str, labels: np.ndarray, predictions: np.ndarray) -> float:
  """The metric ``name`` (one of ``TASK_METRICS``) of ``predictions`` against ``labels``."""
  if name not in _METRICS:
    raise ValueError(f"unknown task metric {name!r}; choose one of {list(TASK_METRICS)}")
  return _METRICS[name](labels, predictions)
