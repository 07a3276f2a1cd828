"""Runs a model on any batch size through a fixed set of compiled batch shapes.

A request of ``n`` examples is padded with zero rows to the smallest bucket
``>= n`` (powers of two up to ``max_batch``, and ``max_batch`` itself), so the
service compiles at most ``len(batch_buckets(max_batch))`` programs, never one per
request size. Rows are independent in an inference network, so the padding does not
change the real rows' outputs.
"""

from __future__ import annotations

import threading
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


def batch_buckets(max_batch: int) -> tuple[int, ...]:
  """Padded batch sizes: ``1, 2, 4, ... < max_batch`` and ``max_batch``.

  Example:
    >>> batch_buckets(48)
    (1, 2, 4, 8, 16, 32, 48)
  """
  if max_batch < 1:
    raise ValueError(f"max_batch must be >= 1, got {max_batch}")
  sizes = []
  size = 1
  while size < max_batch:
    sizes.append(size)
    size *= 2
  return tuple(sizes) + (max_batch,)


class BucketedForward:
  """``forward`` jitted once per bucket; calls with ``[n, *input_shape]`` numpy arrays.

  Args:
    forward: jittable ``[N, *input_shape] -> [N, output_size]``.
    input_shape: one input without the batch axis.
    max_batch: the largest batch a call may have.
    dtype: dtype of the model's inputs (``float32`` pixels, ``int32`` token ids).
  """

  def __init__(self, forward: Callable[[jnp.ndarray], jnp.ndarray],
               input_shape: tuple[int, ...], max_batch: int, dtype: str = "float32"):
    self.buckets = batch_buckets(max_batch)
    self.dtype = np.dtype(dtype)
    self.input_shape = tuple(input_shape)
    self.max_batch = max_batch
    self._jitted = jax.jit(forward)
    self._used: set[int] = set()
    self._lock = threading.Lock()

  def bucket(self, n: int) -> int:
    """The padded batch size for ``n`` examples."""
    if not 1 <= n <= self.max_batch:
      raise ValueError(f"batch of {n} is outside [1, {self.max_batch}]")
    return next(b for b in self.buckets if b >= n)

  @property
  def compiled_buckets(self) -> tuple[int, ...]:
    """Bucket sizes run so far (each compiled exactly once)."""
    return tuple(sorted(self._used))

  def __call__(self, inputs: np.ndarray) -> np.ndarray:
    n = len(inputs)
    size = self.bucket(n)
    padded = np.zeros((size,) + self.input_shape, self.dtype)
    padded[:n] = inputs
    # One forward at a time: XLA already uses every core for one batch, and the lock
    # keeps a first compile of a bucket from racing with itself.
    with self._lock:
      out = np.asarray(self._jitted(jnp.asarray(padded)))
      self._used.add(size)
    return out[:n]

  def warmup(self) -> None:
    """Compiles every bucket now (so that no request waits for a compile)."""
    for size in self.buckets:
      self(np.zeros((size,) + self.input_shape, self.dtype))
