"""BBT's continuous soft prompt: a low-dimensional ``z`` through a fixed random projection.

Black-Box Tuning (Sun et al., ICML 2022; docs/algorithms.md, "BBT") searches a small vector
``z in R^d`` instead of the ``P x H`` prompt embeddings. A FIXED random matrix
``A in R^{d x (P*H)}`` (no bias, drawn once from a seed, never trained and never
sent over the network: every party redraws it from the same seed) maps it to the
prompt::

    prompt(z) = base + reshape(z @ A, [P, H])                 ("add" mode)

where ``base [P, H]`` are the word embeddings of the placeholder tokens (e.g. an
init text). The entries of ``A`` are ``N(0, sigma_A^2)`` with

    sigma_A = alpha * sigma_E / (sqrt(d) * sigma)

``sigma_E`` = std of the flattened word-embedding matrix, ``sigma`` = the search's
initial step size and ``alpha = sigma = 1`` by default, so that a draw
``z ~ N(0, sigma^2 I)`` gives ``Az`` with entries of std ``alpha * sigma_E``: the
scale of a word embedding. ``z = 0`` is exactly the base prompt.

Example:
    >>> a = random_projection(0, 100, 5, 384, embedding_std=0.05)
    >>> gen = make_soft_prompt(a, base_embeddings)          # base: [5, 384]
    >>> params = gen.init(key)                              # {"z": zeros(100)}
    >>> prompt = gen.apply(params, None)                    # [5, 384] = base at z = 0
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from fedbbpt_jax.prompts.base import PromptGenerator

PyTree = Any


def projection_std(dim: int, embedding_std: float, alpha: float = 1.0,
                   sigma: float = 1.0) -> float:
  """``sigma_A = alpha * sigma_E / (sqrt(d) * sigma)`` (BBT's scaled projection)."""
  if dim < 1:
    raise ValueError(f"projection dimension d must be >= 1, got {dim}")
  if embedding_std <= 0 or alpha <= 0 or sigma <= 0:
    raise ValueError(f"embedding_std={embedding_std}, alpha={alpha} and sigma={sigma} must be "
                     "> 0")
  return float(alpha) * float(embedding_std) / (math.sqrt(dim) * float(sigma))


def random_projection(seed: int, dim: int, length: int, hidden: int, embedding_std: float,
                      alpha: float = 1.0, sigma: float = 1.0) -> jnp.ndarray:
  """The fixed projection ``A [d, P*H]`` drawn from ``seed`` (deterministic, float32).

  Args:
    seed: integer seed of the draw (the only thing parties need to share).
    dim: ``d``, the searched dimension.
    length: ``P``, prompt positions.
    hidden: ``H``, the encoder's embedding width.
    embedding_std: ``sigma_E``, std of the flattened word-embedding matrix.
    alpha: BBT's ``alpha`` (scale of ``Az`` in units of ``sigma_E``).
    sigma: the search's initial step size the scale is matched to.
  """
  std = projection_std(dim, embedding_std, alpha, sigma)
  key = jax.random.key(int(seed))
  return std * jax.random.normal(key, (int(dim), int(length) * int(hidden)), jnp.float32)


def make_soft_prompt(projection: jnp.ndarray, base_embeddings: jnp.ndarray) -> PromptGenerator:
  """Builds the soft prompt ``z -> base + reshape(z @ A)``.

  Args:
    projection: ``A [d, P*H]`` (e.g. ``random_projection``), closed over: not a parameter.
    base_embeddings: ``[P, H]`` embeddings the placeholders hold at ``z = 0``.

  Returns:
    A ``PromptGenerator``: ``init(key) -> {"z": zeros(d)}``; ``features`` unused;
    ``apply(params, _) -> [P, H]`` float32 prompt embeddings.
  """
  a = jnp.asarray(projection, jnp.float32)
  base = jnp.asarray(base_embeddings, jnp.float32)
  if a.ndim != 2 or base.ndim != 2 or a.shape[1] != base.size:
    raise ValueError(f"projection {a.shape} must be [d, P*H] for base embeddings "
                     f"{base.shape} = [P, H]")
  dim = a.shape[0]

  def init(key: jax.Array) -> dict[str, jnp.ndarray]:
    del key
    return {"z": jnp.zeros((dim,), jnp.float32)}

  def apply(params: PyTree, z: Any) -> jnp.ndarray:
    del z
    return base + (params["z"].astype(jnp.float32) @ a).reshape(base.shape)

  return PromptGenerator(name="soft", init=init, features=lambda x: None, apply=apply)
