"""What a prompt generator is: pure ``init`` / ``features`` / ``apply`` functions.

``features`` is the frozen, parameter-free part (e.g. a client-side encoder); it does
not depend on the trainable parameters, so a zero-order step computes it once per
minibatch and shares it across all candidates (BlackVIP reruns it 2K times).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

PyTree = Any


class PromptGenerator(NamedTuple):
  """A prompt generator.

  Attributes:
    name: registry name.
    init: ``init(key) -> params`` (trainable pytree).
    features: ``features(canvas_images [B,S,S,3]) -> z`` (frozen; any pytree).
    apply: ``apply(params, z) -> delta`` broadcastable to ``[B, S, S, 3]``.
  """

  name: str
  init: Callable[[jax.Array], PyTree]
  features: Callable[[jnp.ndarray], PyTree]
  apply: Callable[[PyTree, PyTree], jnp.ndarray]


def num_params(params: PyTree) -> int:
  """Counts the trainable floats of a parameter pytree."""
  return int(sum(x.size for x in jax.tree.leaves(params)))
