"""Batched evaluation of a prompt generator on a fixed test set (any ``Task``)."""

from __future__ import annotations

import copy
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.tasks.classification_metrics import classification_report
from fedbbpt_jax.tasks.protocol import Task, TaskMetric, task_state, with_task_state


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
  """Evaluates generators on ``(x, y)`` in chunks of at most ``batch_size`` rows.

  Full chunks have ``batch_size`` rows and the last one the remainder, so no padded
  row is ever scored: against a paid API, every example sent is a test example
  (this costs at most one extra compile, for the remainder's shape).
  Calling it with ``params=None`` evaluates the task without a prompt (zero-shot).
  ``__call__`` gives (accuracy, loss); ``report`` adds macro-F1, per-class recall
  and the majority-collapse flag (any ``Task``). With ``task_metric=(name, fn)``
  (a family's own metric, e.g. GLUE's F1 for MRPC) the report also holds
  ``task_metric_name`` and ``task_metric``.
  """

  def __init__(self, task: Task, x: np.ndarray, y: np.ndarray, batch_size: int,
               task_metric: tuple[str, TaskMetric] | None = None):
    n = len(y)
    self.num_examples = n
    self._batch_size = batch_size
    self._x = jnp.asarray(x)
    self._y = jnp.asarray(np.asarray(y).astype(np.int32))
    self._chunks = [slice(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    self._num_classes = int(task.num_classes)
    self._task_metric = task_metric
    self.task_metric_name: str | None = None if task_metric is None else task_metric[0]
    # The task's refreshable arrays (e.g. a label map) are an argument of the compiled
    # functions, so ``for_task`` with a refreshed task reuses them (no recompile).
    self._state = task_state(task)

    def sums(state, params, x, y):
      return masked_sums(with_task_state(task, state), params, x, y, jnp.ones(y.shape, bool))

    def outputs(state, params, x, y):
      t = with_task_state(task, state)
      logits = t.logits(params, x)
      return jnp.argmax(logits, -1), t.loss(logits, y)

    self._jit_sums, self._jit_outputs = jax.jit(sums), jax.jit(outputs)

  def _sums(self, params, x, y):
    return self._jit_sums(self._state, params, x, y)

  def _outputs(self, params, x, y):
    return self._jit_outputs(self._state, params, x, y)

  def for_task(self, task: Task) -> "Evaluator":
    """The same test set, chunks, metric and compiled functions for ``task``: this
    evaluator's task with other state (e.g. a new label mapping, ``tasks.task_state``).
    A task without state gets a new evaluator."""
    state = task_state(task)
    if state is None or self._state is None:
      return Evaluator(task, self._x, self._y, self._batch_size, self._task_metric)
    other = copy.copy(self)
    other._state = state
    return other

  def report(self, params: Any) -> dict[str, Any]:
    """Accuracy, loss, macro-F1, per-class recall, collapse flag (+ task metric) over the set."""
    preds, losses = [], []
    for sl in self._chunks:
      chunk_preds, chunk_losses = self._outputs(params, self._x[sl], self._y[sl])
      preds.append(np.asarray(chunk_preds))
      losses.append(np.asarray(chunk_losses))
    labels, predictions = np.asarray(self._y), np.concatenate(preds)
    rep = classification_report(labels, predictions, np.concatenate(losses), self._num_classes)
    if self._task_metric is not None:
      name, metric = self._task_metric
      rep["task_metric_name"] = name
      rep["task_metric"] = metric(labels, predictions)
    return rep

  def __call__(self, params: Any) -> tuple[float, float]:
    """Returns (accuracy, mean cross-entropy) over the test set."""
    correct = loss = 0.0
    for sl in self._chunks:
      chunk_correct, chunk_loss = self._sums(params, self._x[sl], self._y[sl])
      correct += float(chunk_correct)
      loss += float(chunk_loss)
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
