"""Batched, masked evaluation of a prompt generator on a fixed test set."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.tasks import VisualReprogramming


class Evaluator:
  """Evaluates generators on ``(x, y)`` in fixed-size chunks; padded rows never count.

  Calling it with ``params=None`` evaluates the task without a prompt (zero-shot).
  """

  def __init__(self, task: VisualReprogramming, x: np.ndarray, y: np.ndarray, batch_size: int):
    n = len(y)
    self.num_examples = n
    chunks = -(-n // batch_size)
    pad = chunks * batch_size - n
    self._x = jnp.asarray(np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)]))
    self._y = jnp.asarray(np.concatenate([y, np.zeros(pad, y.dtype)]).astype(np.int32))
    self._mask = jnp.arange(n + pad) < n
    self._batch = batch_size
    self._sums = jax.jit(task.eval_sums)

  def __call__(self, params: Any) -> tuple[float, float]:
    """Returns (accuracy, mean cross-entropy) over the test set."""
    correct = loss = 0.0
    for s in range(0, self._y.shape[0], self._batch):
      sl = slice(s, s + self._batch)
      c, l = self._sums(params, self._x[sl], self._y[sl], self._mask[sl])
      correct += float(c)
      loss += float(l)
    return correct / self.num_examples, loss / self.num_examples
