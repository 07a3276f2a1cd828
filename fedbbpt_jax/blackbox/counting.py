"""A black box that counts the calls and examples it really receives, at run time.

The query meter counts from a cost formula; this wrapper counts what actually
reaches the model inside compiled programs (a ``jax.debug.callback`` on every
forward, so a ``vmap`` over clients, a ``scan`` over steps or a ``shard_map``
counts each client's call as its own), which is how the tests hold every
algorithm's and task family's counters to the truth.

Example:
    >>> counting = CountingBlackBox(blackbox)
    >>> ... run with counting in place of blackbox ...
    >>> counting.counts()      # {'calls': 40, 'examples': 1280}
"""

from __future__ import annotations

import threading
from typing import Any

import jax
import jax.numpy as jnp

from fedbbpt_jax.blackbox.base import BlackBox


class CountingBlackBox(BlackBox):
  """Wraps ``inner`` and counts every forward it serves (calls and input rows).

  Attributes it does not define (``embed``, ``vocab_size``, ``pad_id``, ...) are the
  inner black box's.
  """

  def __init__(self, inner: BlackBox):
    self.inner = inner
    self.name = inner.name
    self.input_shape = tuple(inner.input_shape)
    self.output_size = inner.output_size
    self._lock = threading.Lock()
    self.reset()

  def reset(self) -> None:
    with self._lock:
      self.calls = 0
      self.examples = 0

  def counts(self) -> dict[str, int]:
    """``{'calls', 'examples'}`` so far (waits for pending device work first)."""
    jax.effects_barrier()
    with self._lock:
      return {"calls": self.calls, "examples": self.examples}

  def _record(self, rows: int) -> None:
    with self._lock:
      self.calls += 1
      self.examples += rows

  def _outputs(self, inputs: jnp.ndarray) -> jnp.ndarray:
    rows = int(inputs.shape[0])
    # An argument that depends on the inputs, so that under ``vmap`` the callback
    # is batched (called once per mapped element) rather than hoisted out.
    probe = jnp.reshape(inputs, (-1,))[0].astype(jnp.float32) * 0
    jax.debug.callback(lambda _: self._record(rows), probe)
    return self.inner._outputs(inputs)  # pylint: disable=protected-access

  def raise_pending_error(self) -> None:
    self.inner.raise_pending_error()

  def __getattr__(self, name: str) -> Any:
    if name == "inner":  # not yet set (e.g. during unpickling)
      raise AttributeError(name)
    return getattr(self.inner, name)
