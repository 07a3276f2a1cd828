"""A local black box that runs large calls in fixed-size chunks inside the compiled program.

A zero-order step scores every candidate on one minibatch in one call of
``candidates x batch`` inputs (``x clients`` under ``vmap``). A CPU forward of a
convolutional model can lose speed once a call's activations leave the caches, so
this wrapper evaluates a call of N inputs as ``ceil(N / chunk)`` forwards of
``chunk`` inputs with ``lax.map`` (one compiled loop, no Python), padding the last
chunk with copies of the first input and dropping those rows' outputs. Outputs are
the same as the unchunked call's up to float summation order.

Only for local models: a served model batches on its side, and splitting an API
call would change what is charged (the query meter counts one call per step).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fedbbpt_jax.blackbox.base import BlackBox


class ChunkedBlackBox(BlackBox):
  """Wraps ``inner``; calls of more than ``chunk_size`` inputs run chunk by chunk.

  Attributes it does not define (``embed``, ``params``, ...) are the inner black box's.
  """

  def __init__(self, inner: BlackBox, chunk_size: int):
    if int(chunk_size) < 1:
      raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    self.inner = inner
    self.chunk_size = int(chunk_size)
    self.name = inner.name
    self.input_shape = tuple(inner.input_shape)
    self.output_size = inner.output_size

  def _outputs(self, inputs: jnp.ndarray) -> jnp.ndarray:
    n, chunk = int(inputs.shape[0]), self.chunk_size
    if n <= chunk:
      return self.inner(inputs)
    num_chunks = -(-n // chunk)
    pad = num_chunks * chunk - n
    if pad:  # copies of a real input: no padded row reaches a remote meter (local only)
      inputs = jnp.concatenate([inputs, jnp.broadcast_to(inputs[:1], (pad,) + inputs.shape[1:])])
    chunks = inputs.reshape((num_chunks, chunk) + inputs.shape[1:])
    outputs = jax.lax.map(self.inner, chunks)
    return outputs.reshape((num_chunks * chunk,) + outputs.shape[2:])[:n]

  def raise_pending_error(self) -> None:
    self.inner.raise_pending_error()

  def __getattr__(self, name: str):
    if name == "inner":  # not yet set (e.g. during unpickling): no recursion
      raise AttributeError(name)
    return getattr(self.inner, name)
