"""InstructZero's BO on tinygp: the instruction-coupled GP posterior equals the closed
form; EI golden values; the loop spends exactly its evaluations and finds the optimum
of a smooth score."""

import jax.numpy as jnp
import numpy as np
from scipy.stats import norm as np_norm

from fedbbpt_jax.zo.bayes_opt import (GPParams, build_gp, expected_improvement,
                                                     optimize, sobol_design)


def matern52(a, b, scales):
  r = np.sqrt((((a[:, None, :] - b[None]) / scales) ** 2).sum(-1))
  return (1 + np.sqrt(5) * r + 5 * r ** 2 / 3) * np.exp(-np.sqrt(5) * r)


def test_posterior_equals_the_closed_form():
  rng = np.random.default_rng(0)
  Z, S = rng.uniform(-1, 1, (7, 3)), rng.uniform(0, 1, (7, 4))
  y = rng.standard_normal(7)
  Xs = rng.uniform(-1, 1, (5, 3))
  p = GPParams(jnp.log(jnp.asarray([0.5, 0.8, 1.2])), jnp.log(jnp.asarray([0.3, 0.4, 0.5, 0.6])),
               jnp.asarray(np.log(1.7)), jnp.asarray(np.log(0.05)))
  _, cond = build_gp(p, jnp.asarray(Z, jnp.float32), jnp.asarray(S, jnp.float32)).condition(
      jnp.asarray(y, jnp.float32), jnp.asarray(Xs, jnp.float32))
  # Closed form, in float64: k = K(x, Z) A^-1 K_S A^-1 K(Z, x'), A = K_ZZ + 1e-4 I.
  zs = np.asarray([0.5, 0.8, 1.2])
  A_inv = np.linalg.inv(matern52(Z, Z, zs) + 1e-4 * np.eye(7))
  M = A_inv @ matern52(S, S, np.asarray([0.3, 0.4, 0.5, 0.6])) @ A_inv
  k = lambda a, b: 1.7 * matern52(a, Z, zs) @ M @ matern52(Z, b, zs)
  K = k(Z, Z) + (0.05 + 1e-6) * np.eye(7)
  mean = k(Xs, Z) @ np.linalg.solve(K, y)
  var = np.diag(k(Xs, Xs) - k(Xs, Z) @ np.linalg.solve(K, k(Z, Xs)))
  np.testing.assert_allclose(np.asarray(cond.loc), mean, rtol=2e-3, atol=2e-3)
  np.testing.assert_allclose(np.asarray(cond.variance), var, rtol=2e-2, atol=2e-3)


def test_expected_improvement_golden_values():
  mean, std, best = np.asarray([0.0, 1.0, 2.0]), np.asarray([1.0, 0.5, 2.0]), 1.0
  u = (mean - best) / std
  want = std * (u * np_norm.cdf(u) + np_norm.pdf(u))
  np.testing.assert_allclose(np.asarray(expected_improvement(jnp.asarray(mean),
                                                             jnp.asarray(std), best)), want,
                             rtol=1e-5)


def test_the_loop_spends_its_budget_and_climbs_a_smooth_score():
  target = np.asarray([0.4, -0.3])
  calls = []

  def evaluate(zs):
    calls.append(len(zs))
    scores = np.exp(-4 * ((zs - target) ** 2).sum(-1))
    return scores, np.stack([scores, scores ** 2], 1)  # two "examples"

  result = optimize(evaluate, dim=2, initial=8, iterations=2, batch=4, fit_steps=60)
  assert calls == [8, 4, 4] and len(result.y) == 16
  assert len({z.tobytes() for z in result.Z}) == 16  # never the same point twice
  assert result.best[1] > result.y[:8].max()  # BO improved on the design
  assert np.abs(sobol_design(8, 2)).max() <= 1
