"""How every task scores its candidates: all candidates x examples in ONE black-box call."""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import optax

from fedbbpt_jax.blackbox import BlackBox


def cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
  """Per-example cross-entropy of integer labels."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def mean_candidate_losses(blackbox: BlackBox, rows: jnp.ndarray, labels: jnp.ndarray,
                          to_logits: Callable[[jnp.ndarray], jnp.ndarray],
                          loss: Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]
                          ) -> jnp.ndarray:
  """Mean loss ``[I]`` of ``I`` candidates' black-box inputs ``rows [I, B, ...]``.

  The ``I * B`` rows go to the black box in one call; ``to_logits`` maps its outputs
  to task logits (label mapping, cosine to verbalizers, or nothing); ``loss`` is
  per example.
  """
  num_cands, b = rows.shape[:2]
  out = blackbox(rows.reshape((num_cands * b,) + rows.shape[2:]))
  logits = to_logits(out).reshape(num_cands, b, -1)
  return loss(logits, jnp.broadcast_to(labels, (num_cands, b))).mean(axis=1)
