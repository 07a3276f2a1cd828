"""The one local step body: its hooks, the non-finite rule, and scan == unrolled."""

import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.federated import (ClientData, StepHooks, make_client_optimizer,
                                   make_local_update, nonfinite_as_worst)
from fedbbpt_jax.zo import HParams, make_estimator

TARGET = jnp.asarray([1.0, -2.0, 0.5], jnp.float32)
START = {"w": jnp.zeros(3, jnp.float32)}
DATA = ClientData(x=jnp.zeros((6, 1)), y=jnp.zeros((6,), jnp.int32),
                  num_examples=jnp.asarray(5, jnp.int32))
HP = HParams.create(lr=0.05, sigma=0.1)


def quadratic_losses(candidates, batch):
  del batch
  return jax.vmap(lambda c: jnp.sum((c["w"] - TARGET) ** 2))(candidates)


def nan_for_first_candidate(candidate_losses):
  def losses(candidates, batch):
    out = candidate_losses(candidates, batch)
    return out.at[0].set(jnp.nan)
  return losses


def test_nonfinite_losses_are_ranked_worst_and_counted():
  losses, count = nonfinite_as_worst(jnp.asarray([1.0, jnp.nan, 3.0, jnp.inf]))
  np.testing.assert_array_equal(np.asarray(losses), [1.0, 3.0, 3.0, 3.0])
  assert int(count) == 2
  losses, count = nonfinite_as_worst(jnp.asarray([jnp.nan, jnp.nan]))
  np.testing.assert_array_equal(np.asarray(losses), [0.0, 0.0])
  assert int(count) == 2


def test_a_nan_candidate_never_reaches_the_parameters():
  est = make_estimator("spsa", 2)
  update = jax.jit(make_local_update(quadratic_losses, est, make_client_optimizer("sgd"), 5, 2,
                                     hooks=StepHooks(objective=nan_for_first_candidate)))
  out = update(START, DATA, jax.random.key(0), HP, 0)
  assert np.all(np.isfinite(np.asarray(out.delta["w"])))
  assert np.abs(np.asarray(out.delta["w"])).max() > 0
  assert int(out.metrics["nonfinite_candidates"]) == 5  # one per step
  clean = jax.jit(make_local_update(quadratic_losses, est, make_client_optimizer("sgd"), 5, 2))
  assert int(clean(START, DATA, jax.random.key(0), HP, 0).metrics["nonfinite_candidates"]) == 0


def test_the_objective_hook_changes_what_every_step_scores():
  est = make_estimator("gaussian_antithetic", 2)
  doubled = StepHooks(objective=lambda f: (lambda c, b: 2.0 * f(c, b)))
  plain = make_local_update(quadratic_losses, est, make_client_optimizer("sgd"), 1, 2)
  hooked = make_local_update(quadratic_losses, est, make_client_optimizer("sgd"), 1, 2,
                             hooks=doubled)
  a = plain(START, DATA, jax.random.key(1), HP, 0)
  b = hooked(START, DATA, jax.random.key(1), HP, 0)
  np.testing.assert_allclose(np.asarray(b.metrics["train_loss"]),
                             2 * np.asarray(a.metrics["train_loss"]), rtol=1e-5)
  # Same candidates, doubled loss differences: the SGD step is twice as long.
  np.testing.assert_allclose(np.asarray(b.delta["w"]), 2 * np.asarray(a.delta["w"]), rtol=1e-5)


def test_the_project_hook_runs_after_every_step_in_both_forms():
  est = make_estimator("spsa", 2)
  clip = StepHooks(project=lambda p: {"w": jnp.clip(p["w"], -0.01, 0.01)})
  update = make_local_update(quadratic_losses, est, make_client_optimizer("sgd"), 4, 2,
                             hooks=clip)
  scanned = jax.jit(update)(START, DATA, jax.random.key(2), HP, 1)
  unrolled = update.unrolled(START, DATA, jax.random.key(2), HP, 1)
  assert np.abs(np.asarray(scanned.delta["w"])).max() <= 0.01 + 1e-7
  np.testing.assert_allclose(np.asarray(scanned.delta["w"]), np.asarray(unrolled.delta["w"]),
                             rtol=1e-5, atol=1e-7)
  assert int(unrolled.metrics["nonfinite_candidates"]) == 0


def test_the_sam_step_is_the_same_in_the_scan_and_the_unrolled_form():
  est = make_estimator("spsa_gc", 2)
  update = make_local_update(quadratic_losses, est, make_client_optimizer("sgd"), 3, 2,
                             hooks=StepHooks(sam_rho=0.1))
  scanned = jax.jit(update)(START, DATA, jax.random.key(4), HP, 2)
  unrolled = update.unrolled(START, DATA, jax.random.key(4), HP, 2)
  np.testing.assert_allclose(np.asarray(scanned.delta["w"]), np.asarray(unrolled.delta["w"]),
                             rtol=1e-5, atol=1e-7)
  plain = jax.jit(make_local_update(quadratic_losses, est, make_client_optimizer("sgd"), 3, 2))
  assert not np.allclose(np.asarray(plain(START, DATA, jax.random.key(4), HP, 2).delta["w"]),
                         np.asarray(scanned.delta["w"]))
