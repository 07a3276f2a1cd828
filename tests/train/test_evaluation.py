"""The evaluator scores every test row exactly once and never a padded row."""

import jax.numpy as jnp
import numpy as np
import optax

from fedbbpt_jax.tasks.evaluation import Evaluator


class LinearTask:
  """A tiny task: logits = x @ (w + params); records the row counts it is traced with."""

  num_classes = 3

  def __init__(self, w):
    self.w = jnp.asarray(w)
    self.rows_traced = []

  def logits(self, params, x):
    self.rows_traced.append(x.shape[0])
    return x @ (self.w if params is None else self.w + params)

  def loss(self, logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def test_chunks_cover_the_rows_once_without_padding():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(23, 4)).astype(np.float32)
  y = rng.integers(0, 3, size=23)
  w = rng.normal(size=(4, 3)).astype(np.float32)
  task = LinearTask(w)
  evaluator = Evaluator(task, x, y, batch_size=10)
  acc, loss = evaluator(None)
  rep = evaluator.report(None)
  logits = x @ w
  expected_acc = float(np.mean(np.argmax(logits, -1) == y))
  shifted = logits - logits.max(-1, keepdims=True)
  expected_loss = float(np.mean(np.log(np.exp(shifted).sum(-1)) - shifted[np.arange(23), y]))
  assert acc == rep["accuracy"] == expected_acc
  np.testing.assert_allclose([loss, rep["loss"]], expected_loss, rtol=1e-5)
  # Two chunk shapes, 10 and the remainder 3: no row is padded, none is scored twice.
  assert sorted(set(task.rows_traced)) == [3, 10]
