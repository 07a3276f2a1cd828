"""BBT's soft prompt: the scaled fixed random projection and z -> base + reshape(Az)."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from fedbbpt_jax.prompts import make_soft_prompt, projection_std, random_projection


def test_projection_std_is_the_bbt_formula():
  # sigma_A = alpha * sigma_E / (sqrt(d) * sigma)
  assert projection_std(100, 0.05) == pytest.approx(0.005, rel=1e-12)
  assert projection_std(400, 0.06, alpha=0.5, sigma=2.0) == pytest.approx(
      0.5 * 0.06 / (20 * 2.0), rel=1e-12)
  with pytest.raises(ValueError, match="embedding_std"):
    projection_std(10, 0.0)


@pytest.mark.parametrize("dim, alpha, sigma", [(50, 1.0, 1.0), (200, 0.5, 2.0)])
def test_projection_entries_have_the_formula_std_and_zero_mean(dim, alpha, sigma):
  sigma_e = 0.0556
  a = np.asarray(random_projection(3, dim, 4, 96, sigma_e, alpha, sigma), np.float64)
  assert a.shape == (dim, 4 * 96)
  target = alpha * sigma_e / (math.sqrt(dim) * sigma)
  n = a.size  # >= 19,200 draws: std's relative standard error is 1 / sqrt(2n) < 0.6 %
  assert abs(a.std() / target - 1) < 4 / math.sqrt(2 * n)
  assert abs(a.mean()) < 4 * target / math.sqrt(n)
  # The point of the scale: z ~ N(0, sigma^2 I) gives Az entries of std alpha * sigma_E.
  z = sigma * np.random.default_rng(0).normal(size=(400, dim))
  assert (z @ a).std() == pytest.approx(alpha * sigma_e, rel=0.05)


def test_projection_is_deterministic_from_its_seed():
  a = np.asarray(random_projection(7, 30, 2, 16, 0.05))
  np.testing.assert_array_equal(a, np.asarray(random_projection(7, 30, 2, 16, 0.05)))
  assert not np.allclose(a, np.asarray(random_projection(8, 30, 2, 16, 0.05)))
  # The scale changes only the std, not the draw.
  np.testing.assert_allclose(np.asarray(random_projection(7, 30, 2, 16, 0.10)), 2 * a, rtol=1e-6)


def test_soft_prompt_is_base_at_zero_and_base_plus_projection_elsewhere():
  base = jnp.asarray(np.random.default_rng(1).normal(size=(3, 8)), jnp.float32)
  a = random_projection(0, 5, 3, 8, 0.05)
  gen = make_soft_prompt(a, base)
  params = gen.init(None)
  np.testing.assert_array_equal(np.asarray(params["z"]), np.zeros(5, np.float32))
  np.testing.assert_array_equal(np.asarray(gen.apply(params, None)), np.asarray(base))
  z = jnp.arange(5, dtype=jnp.float32)
  expected = np.asarray(base) + (np.asarray(z) @ np.asarray(a)).reshape(3, 8)
  np.testing.assert_allclose(np.asarray(gen.apply({"z": z}, None)), expected, rtol=1e-5,
                             atol=1e-6)
  with pytest.raises(ValueError, match=r"\[d, P\*H\]"):
    make_soft_prompt(a, base[:2])
