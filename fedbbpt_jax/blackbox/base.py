"""The narrow interface through which every experiment reaches the pre-trained model.

A black box maps a batch of (prompted) inputs to outputs (logits or embeddings),
batched on the leading axis. No gradient is ever taken through it: the outputs
pass through ``lax.stop_gradient``. Queries are counted from static shapes by the
callers (every call of N inputs costs N examples; see ``QueryMeter``).
"""

from __future__ import annotations

import abc

import jax
import jax.numpy as jnp


class BlackBox(abc.ABC):
  """A model seen only through its outputs.

  Attributes:
    name: the model's name (e.g. ``efficientnet_lite0``).
    input_shape: shape of one input without the batch axis (e.g. ``(96, 96, 3)``).
    output_size: size of one output vector (e.g. 1000 ImageNet logits).
  """

  name: str
  input_shape: tuple[int, ...]
  output_size: int

  @abc.abstractmethod
  def _outputs(self, inputs: jnp.ndarray) -> jnp.ndarray:
    """Returns outputs ``[N, output_size]`` for inputs ``[N, *input_shape]``."""

  def __call__(self, inputs: jnp.ndarray) -> jnp.ndarray:
    if tuple(inputs.shape[1:]) != tuple(self.input_shape):
      raise ValueError(f"black box {self.name!r} takes inputs of shape [N, *{self.input_shape}], "
                       f"got {tuple(inputs.shape)}")
    return jax.lax.stop_gradient(self._outputs(inputs))

  def raise_pending_error(self) -> None:
    """Raises an error recorded inside a traced call, if any.

    A host callback must not raise, so a remote black box records its error and
    returns NaN; the round loop calls this after every step and evaluation, before
    anything is written. Local black boxes never record one.
    """
