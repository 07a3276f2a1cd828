"""Seed-and-scalar uploads: replaying a client's key and losses rebuilds its dense delta."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.federated import (ClientData, make_client_optimizer, make_local_update,
                                   make_seed_local_update)
from fedbbpt_jax.federated.algorithms.algorithm import traffic_metrics
from fedbbpt_jax.federated.algorithms.client import ClientOutput
from fedbbpt_jax.federated.algorithms.seed_uploads import SeedUpload, check_seed_upload
from fedbbpt_jax.prompts.discrete import project_tree
from fedbbpt_jax.zo import HParams, make_estimator

STEPS, BATCH, ROUND = 6, 4, 2
START = {"a": jnp.asarray([0.3, -0.2, 0.1], jnp.float32),
         "b": jnp.asarray([[0.5, 0.0], [-0.4, 0.2]], jnp.float32)}
NUM_PARAMS = 7
# Decaying step size and perturbation; SPSA-GC's momentum is used.
HP = HParams.create(lr=0.05, sigma=0.05, lr_offset=1.0, lr_decay=0.6, sigma_decay=0.2,
                    momentum=0.9)
ROWS = jax.random.normal(jax.random.key(7), (10, NUM_PARAMS))
DATA = ClientData(x=ROWS, y=jnp.zeros((10,), jnp.int32), num_examples=jnp.asarray(9, jnp.int32))


def flat(tree):
  return jnp.concatenate([jnp.ravel(a) for a in jax.tree.leaves(tree)])


def batch_quadratic(candidates, batch):
  """Mean over the minibatch of ||w - x_i||^2: the minibatch draw matters."""
  w = jax.vmap(flat)(candidates)                                   # [C, P]
  return jnp.mean(jnp.sum((w[:, None, :] - batch["x"][None]) ** 2, -1), -1)


def with_nan(candidates, batch):
  """The second candidate's loss is NaN at every step; the others are finite."""
  return batch_quadratic(candidates, batch).at[1].set(jnp.nan)


@functools.cache   # pure and deterministic: tests that need the same run share it
def dense_and_replayed(name, losses_fn=batch_quadratic, directions=2):
  estimator = make_estimator(name, directions)
  opt = make_client_optimizer("sgd")
  dense = make_local_update(losses_fn, estimator, opt, STEPS, BATCH)
  record, replay = make_seed_local_update(losses_fn, estimator, opt, STEPS, BATCH)
  key = jax.random.fold_in(jax.random.key(3), 11)
  r = jnp.asarray(ROUND, jnp.int32)
  out = jax.jit(dense)(START, DATA, key, HP, r)
  upload = jax.jit(record)(START, DATA, key, HP, r)
  delta = jax.jit(replay)(START, upload, HP, r)
  return out, upload, delta, estimator


@pytest.mark.parametrize("name", ["spsa", "spsa_gc", "gaussian_antithetic", "sphere",
                                  "gaussian", "coordinate"])
def test_replaying_key_and_losses_gives_the_dense_delta(name):
  out, upload, delta, estimator = dense_and_replayed(name)
  want, got = np.asarray(flat(out.delta)), np.asarray(flat(delta))
  assert np.linalg.norm(want) > 1e-3  # the client moved
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())
  assert upload.losses.shape == (STEPS, estimator.num_candidates)
  assert upload.losses.dtype == jnp.float32 and upload.key_data.dtype == jnp.uint32
  # The recorded losses are what the client measured: their mean is its train loss.
  np.testing.assert_allclose(float(jnp.mean(upload.losses)), float(out.metrics["train_loss"]),
                             rtol=1e-6)
  assert float(upload.num_examples) == 9.0


def test_a_different_round_or_key_does_not_replay_to_the_same_delta():
  out, upload, _, _ = dense_and_replayed("spsa_gc")
  _, replay = make_seed_local_update(batch_quadratic, make_estimator("spsa_gc", 2),
                                     make_client_optimizer("sgd"), STEPS, BATCH)
  replay = jax.jit(replay)   # compiled once for both replays
  wrong_round = replay(START, upload, HP, jnp.asarray(ROUND + 1, jnp.int32))
  wrong_key = replay(START, upload.replace(key_data=upload.key_data + 1), HP,
                     jnp.asarray(ROUND, jnp.int32))
  for other in (wrong_round, wrong_key):
    assert float(jnp.max(jnp.abs(flat(other) - flat(out.delta)))) > 1e-4


def test_nonfinite_losses_are_recorded_raw_and_replay_to_the_dense_delta():
  out, upload, delta, _ = dense_and_replayed("spsa_gc", with_nan)
  assert int(jnp.sum(jnp.isnan(upload.losses))) == STEPS  # raw: the rule is applied in replay
  assert int(out.metrics["nonfinite_candidates"]) == STEPS
  assert int(upload.metrics["nonfinite_candidates"]) == STEPS
  want = np.asarray(flat(out.delta))
  assert np.all(np.isfinite(want)) and np.linalg.norm(want) > 1e-3
  np.testing.assert_allclose(np.asarray(flat(delta)), want, rtol=1e-6,
                             atol=1e-6 * np.abs(want).max())


def test_upload_bytes_count_the_delta_or_the_key_and_losses():
  out, upload, _, estimator = dense_and_replayed("spsa")
  cohort = lambda tree: jax.tree.map(lambda a: jnp.stack([a] * 3), tree)
  dense = traffic_metrics(START, cohort(out), 3, per_client_state=False)
  seeds = traffic_metrics(START, cohort(upload), 3, per_client_state=False)
  assert int(dense["upload_bytes"]) == 3 * 4 * NUM_PARAMS
  assert int(seeds["upload_bytes"]) == 3 * (8 + 4 * STEPS * estimator.num_candidates)
  assert int(dense["download_bytes"]) == int(seeds["download_bytes"]) == 3 * 4 * NUM_PARAMS
  assert isinstance(out, ClientOutput) and isinstance(upload, SeedUpload)


def test_bdpl_replays_its_categorical_samples_and_simplex_projection():
  """BDPL: one-hot samples from the key and the current probabilities, a policy
  gradient on the centred losses, a projection back onto the simplex every step."""
  probs = {"tokens": jnp.full((3, 5), 0.2, jnp.float32)}
  costs = jax.random.normal(jax.random.key(5), (3, 5))

  def discrete_losses(candidates, batch):  # minibatch-dependent cost of the sampled tokens
    picked = jnp.einsum("cij,ij->c", candidates["tokens"], costs)
    return picked + 0.1 * jnp.mean(batch["x"][:, 0])

  estimator = make_estimator("bdpl", 4)
  opt = make_client_optimizer("sgd")
  dense = make_local_update(discrete_losses, estimator, opt, STEPS, BATCH, project=project_tree)
  record, replay = make_seed_local_update(discrete_losses, estimator, opt, STEPS, BATCH,
                                          project=project_tree)
  key, r = jax.random.key(9), jnp.asarray(ROUND, jnp.int32)
  hp = HParams.create(lr=0.2, sigma=1.0)
  out = jax.jit(dense)(probs, DATA, key, hp, r)
  delta = jax.jit(replay)(probs, jax.jit(record)(probs, DATA, key, hp, r), hp, r)
  assert float(jnp.abs(out.delta["tokens"]).max()) > 1e-3
  np.testing.assert_allclose(np.asarray(delta["tokens"]), np.asarray(out.delta["tokens"]),
                             rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["cma_es", "open_es"])
def test_estimators_that_cannot_be_replayed_are_refused(name):
  with pytest.raises(ConfigError, match=rf"client\.upload='seeds'.*zo\.estimator='{name}'"):
    check_seed_upload(name)
  with pytest.raises(ValueError, match=name):
    make_seed_local_update(batch_quadratic, make_estimator(name, 4),
                           make_client_optimizer("sgd"), STEPS, BATCH)


def test_a_user_estimator_tagged_replayable_may_upload_seeds():
  from fedbbpt_jax.zo import CONTINUOUS, ESTIMATORS, GRADIENT, REPLAYABLE
  with pytest.raises(ConfigError, match=r"cannot replay config.zo.estimator='cma_es'.*"
                                        r"registry tag 'replayable'"):
    check_seed_upload("cma_es")
  ESTIMATORS.register("my_spsa", ESTIMATORS.get("spsa"), tags=(CONTINUOUS, GRADIENT, REPLAYABLE))
  try:
    check_seed_upload("my_spsa")  # accepted: no error
    ESTIMATORS.register("my_es", ESTIMATORS.get("spsa"), tags=(CONTINUOUS, GRADIENT))
    with pytest.raises(ConfigError, match="config.zo.estimator='my_es'"):
      check_seed_upload("my_es")
  finally:
    ESTIMATORS.unregister("my_spsa")
    if "my_es" in ESTIMATORS:
      ESTIMATORS.unregister("my_es")
