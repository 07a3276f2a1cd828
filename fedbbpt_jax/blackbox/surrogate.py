"""A frozen local copy of the model, evaluated in pure JAX (fast, fully jittable)."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from fedbbpt_jax.blackbox.base import BlackBox


class SurrogateBlackBox(BlackBox):
  """Wraps a frozen ``apply_fn(variables, inputs)`` as a black box.

  The variables are closed over as device arrays and never differentiated.

  Example:
    >>> bb = SurrogateBlackBox("tiny", lambda v, x: x.reshape(len(x), -1) @ v, w, (4, 4, 1), 10)
    >>> logits = bb(images)   # [N, 10]
  """

  def __init__(self, name: str, apply_fn: Callable[[Any, jnp.ndarray], jnp.ndarray],
               variables: Any, input_shape: tuple[int, ...], output_size: int):
    self.name = name
    self.input_shape = tuple(input_shape)
    self.output_size = int(output_size)
    self._apply_fn = apply_fn
    self._variables = jax.tree.map(jnp.asarray, variables)

  def _outputs(self, inputs: jnp.ndarray) -> jnp.ndarray:
    return self._apply_fn(self._variables, inputs.astype(jnp.float32))
