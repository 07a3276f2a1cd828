"""Batched, masked evaluation of a prompt generator on a fixed test set."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.tasks import TextClassification, VisualReprogramming
from fedbbpt_jax.train.classification_metrics import classification_report
from fedbbpt_jax.train.task_metrics import task_metric


def masked_sums(task: Any, params: Any, x: jnp.ndarray, y: jnp.ndarray,
                mask: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Returns (#correct, summed loss) of ``task`` over the rows where ``mask`` is true.

  ``task`` is any task with ``logits(params, x)`` and per-example ``loss(logits, y)``.
  """
  logits = task.logits(params, x)
  correct = (jnp.argmax(logits, -1) == y).astype(jnp.float32)
  m = mask.astype(jnp.float32)
  return jnp.sum(correct * m), jnp.sum(task.loss(logits, y) * m)


class Evaluator:
  """Evaluates generators on ``(x, y)`` in fixed-size chunks; padded rows never count.

  Calling it with ``params=None`` evaluates the task without a prompt (zero-shot).
  ``__call__`` gives (accuracy, loss); ``report`` adds macro-F1, per-class recall
  and the majority-collapse flag (any task with ``logits``, ``loss`` and
  ``num_classes``: image or text). A task with a ``metric`` attribute (a name in
  ``train.task_metrics.TASK_METRICS``, e.g. GLUE's ``f1`` for MRPC) also gets
  ``task_metric_name`` and ``task_metric`` in its report.
  """

  def __init__(self, task: VisualReprogramming | TextClassification, x: np.ndarray,
               y: np.ndarray, batch_size: int):
    n = len(y)
    self.num_examples = n
    chunks = -(-n // batch_size)
    pad = chunks * batch_size - n
    self._x = jnp.asarray(np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)]))
    self._y = jnp.asarray(np.concatenate([y, np.zeros(pad, y.dtype)]).astype(np.int32))
    self._mask = jnp.arange(n + pad) < n
    self._batch = batch_size
    self._sums = jax.jit(lambda params, x, y, mask: masked_sums(task, params, x, y, mask))
    self._num_classes = int(task.num_classes)
    self.task_metric_name: str | None = getattr(task, "metric", None)

    def outputs(params, x, y):
      logits = task.logits(params, x)
      return jnp.argmax(logits, -1), task.loss(logits, y)

    self._outputs = jax.jit(outputs)

  def report(self, params: Any) -> dict[str, Any]:
    """Accuracy, loss, macro-F1, per-class recall, collapse flag (+ task metric) over the set."""
    preds, losses = [], []
    for s in range(0, self._y.shape[0], self._batch):
      sl = slice(s, s + self._batch)
      p, l = self._outputs(params, self._x[sl], self._y[sl])
      preds.append(np.asarray(p))
      losses.append(np.asarray(l))
    n = self.num_examples
    labels, predictions = np.asarray(self._y)[:n], np.concatenate(preds)[:n]
    rep = classification_report(labels, predictions, np.concatenate(losses)[:n],
                                self._num_classes)
    if self.task_metric_name is not None:
      rep["task_metric_name"] = self.task_metric_name
      rep["task_metric"] = task_metric(self.task_metric_name, labels, predictions)
    return rep

  def __call__(self, params: Any) -> tuple[float, float]:
    """Returns (accuracy, mean cross-entropy) over the test set."""
    correct = loss = 0.0
    for s in range(0, self._y.shape[0], self._batch):
      sl = slice(s, s + self._batch)
      c, l = self._sums(params, self._x[sl], self._y[sl], self._mask[sl])
      correct += float(c)
      loss += float(l)
    return correct / self.num_examples, loss / self.num_examples


def task_metric_fields(report: dict[str, Any], prefix: str) -> dict[str, Any]:
  """``{prefix + "task_metric", "task_metric_name"}`` of a ``report`` (empty if it has none).

  Example: ``task_metric_fields(rep, "test_")`` -> ``{"test_task_metric": 0.81,
  "task_metric_name": "f1"}`` for MRPC; ``{}`` for an image task.
  """
  if "task_metric" not in report:
    return {}
  return {f"{prefix}task_metric": report["task_metric"],
          "task_metric_name": report["task_metric_name"]}
