"""Zero-order estimators: unbiasedness against jax.grad, variance, exact SPSA-GC algebra."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedbbpt_jax.zo import ESTIMATORS, GRADIENT, HParams, make_estimator

P = 6
A = jnp.asarray(np.diag(np.linspace(0.5, 3.0, P)) + 0.1, jnp.float32)
B = jnp.asarray(np.linspace(-1.0, 1.0, P), jnp.float32)
W0 = {"w": jnp.asarray(np.linspace(0.3, -0.7, P), jnp.float32)}


def quadratic(params):
  w = params["w"]
  return 0.5 * w @ A @ w + B @ w + 2.0


def one_estimate(est, key, hp):
  state = est.init(W0, 1)
  cands, state = est.ask(key, W0, state, hp)
  losses = jax.vmap(quadratic)(cands)
  grad, _, _ = est.tell(W0, cands, losses, state, hp)
  return grad["w"]


def many_estimates(name, n, num_directions=2, sigma=0.05):
  est = make_estimator(name, num_directions)
  hp = HParams.create(lr=0.1, sigma=sigma, momentum=0.0)
  keys = jax.random.split(jax.random.key(0), n)
  return np.asarray(jax.jit(jax.vmap(lambda k: one_estimate(est, k, hp)))(keys))


@pytest.mark.parametrize("name", ESTIMATORS.names(GRADIENT))
def test_unbiased_on_quadratic(name):
  true = np.asarray(jax.grad(quadratic)(W0)["w"])
  est = many_estimates(name, 20000)
  mean = est.mean(0)
  stderr = est.std(0) / np.sqrt(est.shape[0])
  # Within 5 Monte-Carlo standard errors on every coordinate, and the standard
  # errors are small enough that this is a real check.
  np.testing.assert_array_less(np.abs(mean - true), 5 * stderr + 1e-4)
  assert stderr.max() < 0.05 * np.abs(true).max()


def test_antithetic_has_lower_variance_than_one_sided():
  one_sided = many_estimates("gaussian", 20000, sigma=0.5)
  antithetic = many_estimates("gaussian_antithetic", 20000, sigma=0.5)
  v1 = one_sided.var(0).sum()
  v2 = antithetic.var(0).sum()
  assert v2 < 0.9 * v1, (v1, v2)


def test_spsa_gc_gains_and_correction_match_hand_computation():
  est = make_estimator("spsa_gc", 1)
  hp = HParams.create(lr=0.01, sigma=0.01, lr_offset=1.0, lr_decay=0.4, sigma_decay=0.1,
                      momentum=0.9)
  # BlackVIP's ViT-B/16 gains (docs/algorithms.md): t=2 -> a_t=0.00644394, c_t=0.00933033.
  np.testing.assert_allclose(hp.step_size(jnp.asarray(2)), 0.00644394, rtol=1e-5)
  np.testing.assert_allclose(hp.perturbation_size(jnp.asarray(2)), 0.00933033, rtol=1e-5)
  np.testing.assert_allclose(hp.step_size(jnp.asarray(1000)), 0.000630705, rtol=1e-5)

  params = {"w": jnp.zeros(2)}
  state = est.init(params, 2)
  cands, state = est.ask(jax.random.key(3), params, state, hp)
  delta = np.asarray(state.directions[0])
  assert np.all((np.abs(delta) >= 0.5) & (np.abs(delta) < 1.0))
  c_t = 0.00933033
  np.testing.assert_allclose(np.asarray(cands["w"]), np.stack([c_t * delta, -c_t * delta]),
                             rtol=1e-5)
  losses = jnp.asarray([1.3, 1.1])
  d1, state, _ = est.tell(params, cands, losses, state, hp)
  g1 = (1.3 - 1.1) / (2 * c_t) / delta
  # First step: m = g, d = g + beta * m.
  np.testing.assert_allclose(np.asarray(d1["w"]), g1 + 0.9 * g1, rtol=1e-4)
  cands, state = est.ask(jax.random.key(4), params, state, hp)
  delta2 = np.asarray(state.directions[0])
  c_3 = 0.01 / 3 ** 0.1
  d2, state, _ = est.tell(params, cands, jnp.asarray([0.5, 0.7]), state, hp)
  g2 = (0.5 - 0.7) / (2 * c_3) / delta2
  m2 = 0.9 * g1 + g2
  np.testing.assert_allclose(np.asarray(d2["w"]), g2 + 0.9 * m2, rtol=1e-4)
  assert int(state.step) == 4


def test_unknown_estimator_names_the_choices():
  with pytest.raises(ValueError, match="spsa_gc"):
    make_estimator("sgd", 2)
