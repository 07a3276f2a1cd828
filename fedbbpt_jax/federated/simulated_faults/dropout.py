"""Client dropouts: a sampled client that trains but fails to report.

With ``server.dropout = p`` every client of the cohort independently fails to report
with probability ``p``, drawn from the round's key and its client id, so a resumed run
drops exactly the clients an uninterrupted run would. A dropped client's weight (its
example count in the upload) becomes 0: it is absent, and every aggregator ignores it.
A round without any survivor leaves the parameters and the server optimizer state
unchanged (the round counter still advances): see ``algorithm.simulated_round``.

Query accounting: a dropped client still spent its queries (it trained, then failed to
report), so the query meter counts every sampled client as before.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

DROPOUT_KEY_FOLD = 2  # the round key's stream of the dropout draws


def survivors(round_key: jax.Array, ids: jnp.ndarray, p: float) -> jnp.ndarray:
  """``[C]`` bool: which clients ``ids`` of the cohort report (each fails with prob. ``p``)."""
  key = jax.random.fold_in(round_key, DROPOUT_KEY_FOLD)
  return jax.vmap(lambda i: jax.random.bernoulli(jax.random.fold_in(key, i), 1.0 - p))(ids)


def drop(uploads, reported: jnp.ndarray):
  """``uploads`` with the example count of every client that did not report set to 0."""
  weights = jnp.where(reported, uploads.num_examples, 0).astype(uploads.num_examples.dtype)
  return uploads.replace(num_examples=weights)


def drop_clients(p: float):
  """``dropout(uploads, ids, round_key) -> (uploads, survivors)``: applies ``server.dropout``."""

  def dropout(uploads, ids, round_key):
    uploads = drop(uploads, survivors(round_key, ids, p))
    return uploads, jnp.sum(uploads.num_examples > 0).astype(jnp.int32)

  return dropout
