"""Categorical discrete prompt, exact simplex projection and candidate vocabularies."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedbbpt_jax.prompts import make_discrete_prompt, project_to_simplex, project_tree
from fedbbpt_jax.prompts.vocabulary import (candidate_vocabulary, flatten_to_token_ids,
                                            frequent_words, pmi_ngrams)


def bisection_projection(u: np.ndarray) -> np.ndarray:
  """Reference in float64: the tau with sum(max(u - tau, 0)) = 1, by 200 bisections."""
  lo, hi = u.min() - 1.0, u.max()
  for _ in range(200):
    tau = 0.5 * (lo + hi)
    lo, hi = (tau, hi) if np.maximum(u - tau, 0).sum() > 1 else (lo, tau)
  return np.maximum(u - 0.5 * (lo + hi), 0)


def test_projection_gives_distributions_matching_the_reference():
  rng = np.random.default_rng(0)
  u = np.concatenate([rng.normal(size=(50, 7)), 5 * rng.normal(size=(50, 7)),
                      rng.uniform(0, 0.01, size=(50, 7))]).astype(np.float32)
  out = np.asarray(project_to_simplex(jnp.asarray(u)))
  assert (out >= 0).all()
  np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)
  ref = np.stack([bisection_projection(row.astype(np.float64)) for row in u])
  np.testing.assert_allclose(out, ref, atol=1e-5)
  # Idempotent, and a point already on the simplex does not move.
  np.testing.assert_allclose(np.asarray(project_to_simplex(jnp.asarray(out))), out, atol=1e-6)
  p = rng.dirichlet(np.ones(7), size=4).astype(np.float32)
  np.testing.assert_allclose(np.asarray(project_to_simplex(jnp.asarray(p))), p, atol=1e-6)


def test_projection_keeps_zeros_exact_and_survives_non_finite_entries():
  u = jnp.asarray([[0.9, 0.6, -0.3, 0.0], [jnp.nan, jnp.inf, 0.2, 0.1]])
  out = np.asarray(project_to_simplex(u))
  np.testing.assert_allclose(out[0], [0.65, 0.35, 0.0, 0.0], atol=1e-6)
  assert np.isfinite(out).all() and np.allclose(out.sum(-1), 1.0, atol=1e-6)
  tree = project_tree({"probs": u[:1]})
  np.testing.assert_allclose(np.asarray(tree["probs"]), out[:1])


def test_discrete_prompt_starts_uniform_and_applies_the_mode():
  prompt = make_discrete_prompt(jnp.asarray([101, 202, 303]), length=2)
  params = prompt.init(jax.random.key(0))
  np.testing.assert_allclose(np.asarray(params["probs"]), np.full((2, 3), 1 / 3))
  theta = {"probs": jnp.asarray([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]])}
  assert np.asarray(prompt.apply(theta, None)).tolist() == [303, 101]
  one_hot = {"probs": jax.nn.one_hot(jnp.asarray([1, 1]), 3)}
  assert np.asarray(prompt.apply(one_hot, None)).tolist() == [202, 202]
  with pytest.raises(ValueError, match="length"):
    make_discrete_prompt(jnp.asarray([1]), length=0)


def test_pmi_ngrams_join_strongly_linked_words():
  texts = ["birth control works. i like it."] * 6 + ["the pill is fine."] * 6 + \
      ["birth of a star.", "control the pain."]
  grams = dict(pmi_ngrams(texts, min_count=5))
  assert grams["birth control works ."] == 6
  assert "the pill is fine ." in grams
  assert frequent_words(["b a b", "b c"])[:2] == [("b", 3), ("a", 1)]


def test_flattening_deduplicates_in_order_and_checks_the_size():
  table = {"a b": [5, 6], "b": [6], "c": [7, 5], "d": [8]}
  ids = flatten_to_token_ids(["a b", "b", "c", "d"], table.__getitem__, 3, exclude=[6])
  assert ids.tolist() == [5, 7, 8]
  with pytest.raises(ValueError, match="vocabulary_size"):
    flatten_to_token_ids(["a b"], table.__getitem__, 3)
  ids = candidate_vocabulary("frequent_words", ["x y x", "x z"],
                             lambda w: [ord(w)], 2)
  assert ids.tolist() == [ord("x"), ord("y")]
