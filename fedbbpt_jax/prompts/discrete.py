"""BDPL's categorical discrete prompt and the exact simplex projection (docs/algorithms.md, "BDPL").

Parameters are a probability matrix ``theta [L, N]``: row ``i`` is the categorical
distribution of prompt position ``i`` over ``N`` candidate tokens, initialised
uniform (``1/N``). A *sampled* prompt is represented as a one-hot matrix of the
same shape, i.e. a vertex of the simplex, so that candidates and parameters share
one pytree structure. ``apply`` maps either to token ids by a per-row arg-max:
for a one-hot sample it is the sampled token, for ``theta`` it is the mode, the
prompt BDPL evaluates with.

Example:
    >>> prompt = make_discrete_prompt(jnp.asarray([2023, 2003, 1037]), length=2)
    >>> theta = prompt.init(key)                       # {"probs": [[1/3]*3]*2}
    >>> prompt.apply(theta, None)                      # [2023, 2023] (ties: first)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from fedbbpt_jax.prompts.base import PromptGenerator

PyTree = Any


def project_to_simplex(u: jnp.ndarray) -> jnp.ndarray:
  """Euclidean projection of every row of ``u [..., N]`` onto the probability simplex.

  Duchi et al. (ICML 2008): sort descending, ``rho = max{j : u_j - (cumsum_j - 1)/j > 0}``,
  ``tau = (cumsum_rho - 1) / rho``, ``theta = max(u - tau, 0)``. Exact (no bisection);
  rows sum to 1 up to float rounding; a point already on the simplex is unchanged.
  Non-finite entries are treated as 0 so that a bad step cannot poison the sampler.
  """
  u = jnp.where(jnp.isfinite(u), u, 0.0).astype(jnp.float32)
  n = u.shape[-1]
  sorted_u = -jnp.sort(-u, axis=-1)
  cumsum = jnp.cumsum(sorted_u, axis=-1)
  j = jnp.arange(1, n + 1, dtype=u.dtype)
  active = sorted_u - (cumsum - 1.0) / j > 0
  rho = jnp.sum(active, axis=-1, keepdims=True)                       # >= 1 always
  cumsum_rho = jnp.take_along_axis(cumsum, rho - 1, axis=-1)
  tau = (cumsum_rho - 1.0) / rho.astype(u.dtype)
  return jnp.maximum(u - tau, 0.0)


def project_tree(params: PyTree) -> PyTree:
  """Projects every leaf of a probability-matrix pytree row-wise onto the simplex."""
  return jax.tree.map(project_to_simplex, params)


def make_discrete_prompt(vocabulary: jnp.ndarray, length: int) -> PromptGenerator:
  """Builds the categorical prompt over ``vocabulary`` (``N`` candidate token ids).

  Args:
    vocabulary: ``[N]`` int32 token ids of the candidates.
    length: number ``L`` of prompt positions.

  Returns:
    A ``PromptGenerator``: ``init(key) -> {"probs": [L, N]}`` (uniform);
    ``features`` is the identity (nothing frozen on the client);
    ``apply(params_or_sample, z) -> [L]`` int32 token ids (per-row arg-max).
  """
  vocab = jnp.asarray(vocabulary, jnp.int32)
  if vocab.ndim != 1 or vocab.shape[0] < 1:
    raise ValueError(f"vocabulary must be a non-empty 1-D id array, got shape {vocab.shape}")
  if length < 1:
    raise ValueError(f"prompt length must be >= 1, got {length}")
  n = vocab.shape[0]

  def init(key: jax.Array) -> dict[str, jnp.ndarray]:
    del key
    return {"probs": jnp.full((length, n), 1.0 / n, jnp.float32)}

  def apply(params: PyTree, z: Any) -> jnp.ndarray:
    del z
    return vocab[jnp.argmax(params["probs"], axis=-1)]

  return PromptGenerator(name="discrete", init=init, features=lambda x: None, apply=apply)
