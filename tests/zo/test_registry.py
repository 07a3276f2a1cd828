"""Every registered estimator: learns a quadratic through make_local_update; ES wrappers are exact.

Unbiasedness against ``jax.grad`` of every gradient estimator (Gaussian family,
sphere, coordinate, SPSA) is in ``test_estimators.py``, parametrized over
``ESTIMATORS.names(GRADIENT)``. ``bdpl`` (categorical prompts) has its own tests.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from evosax.algorithms import CMA_ES

from fedbbpt_jax.federated import ClientData, make_client_optimizer, make_local_update
from fedbbpt_jax.zo import (CLIPPED, CONTINUOUS, ESTIMATORS, EVOLUTION, GRADIENT, HParams,
                            make_estimator)

DIM = 10
CURVATURE = jnp.asarray(np.linspace(0.5, 2.0, DIM), jnp.float32)
TARGET = jnp.asarray(np.linspace(-1.0, 1.0, DIM), jnp.float32)
START = {"w": jnp.zeros(DIM, jnp.float32)}
NO_DATA = ClientData(x=jnp.zeros((4, 1)), y=jnp.zeros((4,), jnp.int32),
                     num_examples=jnp.asarray(4, jnp.int32))


def quadratic(params):
  return 0.5 * jnp.sum(CURVATURE * (params["w"] - TARGET) ** 2)


def candidate_losses(candidates, batch):
  del batch
  return jax.vmap(quadratic)(candidates)


def test_registry_partitions_the_names():
  continuous = set(ESTIMATORS.names(CONTINUOUS))
  assert continuous == (set(ESTIMATORS.names(GRADIENT)) | set(ESTIMATORS.names(EVOLUTION))
                        | set(ESTIMATORS.names(CLIPPED)))
  assert set(ESTIMATORS.names(CLIPPED)) == {"spsa_clip", "spsa_gc_clip"}
  assert {"sphere", "coordinate", "gaussian", "gaussian_antithetic"} <= set(
      ESTIMATORS.names(GRADIENT))
  assert set(ESTIMATORS.names(EVOLUTION)) == {"cma_es", "open_es", "pgpe"}
  assert set(ESTIMATORS.names()) == continuous | {"bdpl"}
  for name in ESTIMATORS.names():
    assert make_estimator(name, 4).name == name


def test_unknown_estimator_names_the_field_and_the_registered_names():
  with pytest.raises(ValueError, match=r"config.zo.estimator='spsaa'.*'spsa_gc'"):
    make_estimator("spsaa", 2)


@pytest.mark.parametrize("name", ESTIMATORS.names(CONTINUOUS))
def test_estimator_reduces_a_quadratic_through_local_update(name):
  # Adam makes one step size fit every estimator's scale; CMA-ES sets the point itself.
  est = make_estimator(name, 4)
  local = jax.jit(make_local_update(candidate_losses, est, make_client_optimizer("adam"),
                                    num_steps=80, batch_size=2))
  out = local(START, NO_DATA, jax.random.key(0), HParams.create(lr=0.05, sigma=0.1), 0)
  final = jax.tree.map(jnp.add, START, out.delta)
  start_loss, final_loss = float(quadratic(START)), float(quadratic(final))
  assert final_loss < 0.1 * start_loss, (name, start_loss, final_loss)
  assert np.isfinite(float(out.metrics["train_loss"]))


@pytest.mark.parametrize("name,size", [("cma_es", 1), ("open_es", 3), ("pgpe", 0)])
def test_population_sizes_are_checked(name, size):
  with pytest.raises(ValueError, match="num_directions"):
    make_estimator(name, size)


def test_cma_es_step_is_exactly_one_evosax_generation():
  est = make_estimator("cma_es", 6)
  hp = HParams.create(lr=1.0, sigma=0.3)
  params = {"w": jnp.asarray(np.linspace(0.2, -0.4, DIM), jnp.float32)}
  key = jax.random.key(7)

  @jax.jit
  def ours():
    cands, state = est.ask(key, params, est.init(params, 1), hp)
    new_params, state, stats = est.tell(params, cands, candidate_losses(cands, None), state, hp)
    return cands["w"], new_params["w"], stats["sigma"], state.step, state.started

  @jax.jit
  def evosax_reference():
    es = CMA_ES(population_size=6, solution=jnp.zeros(DIM))
    ref = es.init(key, params["w"], es.default_params).replace(std=jnp.asarray(0.3))
    pop, ref = es.ask(key, ref, es.default_params)
    ref, _ = es.tell(key, pop, candidate_losses({"w": pop}, None), ref, es.default_params)
    return pop, ref.mean, ref.std

  cands, new_w, sigma, step, started = ours()
  pop, mean, std = evosax_reference()
  np.testing.assert_allclose(cands, pop, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(new_w, mean, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(float(sigma), float(std), rtol=1e-6)
  assert int(step) == 2 and bool(started)


def test_open_es_gradient_is_the_centred_rank_search_gradient():
  n, sigma = 6, 0.2
  est = make_estimator("open_es", n)
  hp = HParams.create(lr=1.0, sigma=sigma)
  state = est.init(START, 1)
  cands, state = est.ask(jax.random.key(3), START, state, hp)
  losses = candidate_losses(cands, None)
  grad, _, _ = est.tell(START, cands, losses, state, hp)
  eps = (np.asarray(cands["w"]) - 0.0) / sigma
  np.testing.assert_allclose(eps[: n // 2], -eps[n // 2:], rtol=1e-5)  # antithetic pairs
  ranks = np.argsort(np.argsort(np.asarray(losses)))
  shaped = ranks / (n - 1) - 0.5
  np.testing.assert_allclose(grad["w"], shaped @ eps / (n * sigma), rtol=1e-5, atol=1e-6)
  # It points uphill: -grad is a descent direction of the quadratic.
  assert float(jnp.vdot(grad["w"], jax.grad(quadratic)(START)["w"])) > 0


def test_pgpe_adapts_its_per_coordinate_sigma_within_a_round():
  est = make_estimator("pgpe", 4)
  hp = HParams.create(lr=0.05, sigma=0.1)

  @jax.jit
  def stds_over_a_round_and_a_restart():
    state, stds = est.init(START, 1), []
    for k in range(3):
      cands, state = est.ask(jax.random.key(k), START, state, hp)
      stds.append(state.search.std)
      _, state, _ = est.tell(START, cands, candidate_losses(cands, None), state, hp)
    stds.append(state.search.std)
    _, fresh = est.ask(jax.random.key(9), START, est.init(START, 4), hp)
    return jnp.stack(stds), fresh.search.std

  stds, restarted = stds_over_a_round_and_a_restart()
  change = np.max(np.abs(np.asarray(stds) - 0.1), axis=1)
  assert change[0] == 0 and change[-1] > 0, change
  np.testing.assert_array_less(change, 0.1 * (1.2 ** np.arange(4) - 1) + 1e-6)  # <= 20 %/step
  np.testing.assert_allclose(restarted, 0.1)  # a new round restarts at sigma
