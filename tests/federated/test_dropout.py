"""Client dropouts: hand-computed weights, pure draws, a round without survivors keeps the state."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from configs.fmnist_effnet import get_config
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.federated import (ClientOutput, make_client_optimizer, make_fedbbpt,
                                   make_local_update, make_upload_faults, with_faults)
from fedbbpt_jax.federated.aggregation.aggregators import make_aggregator
from fedbbpt_jax.federated.algorithms.algorithm import FAULTS_KEY_FOLD
from fedbbpt_jax.federated.simulated_faults.dropout import drop, survivors
from fedbbpt_jax.federated.algorithms.server import client_keys, round_keys
from fedbbpt_jax.train import validate_config
from fedbbpt_jax.zo import HParams, make_estimator
from tests.federated.test_fedbbpt import DIM, NUM_CLIENTS, candidate_losses, make_clients
from tests.helpers.overrides import with_overrides


def test_three_survivors_of_five_weigh_one_two_three_sixths():
  up = ClientOutput(delta={"d": jnp.eye(5)}, metrics={},
                    num_examples=jnp.asarray([10.0, 7.0, 20.0, 9.0, 30.0]))
  dropped = drop(up, jnp.asarray([True, False, True, False, True]))
  np.testing.assert_array_equal(dropped.num_examples, [10, 0, 20, 0, 30])
  for name in ("weighted_mean", "norm_bounded_mean"):  # every delta has norm 1 <= the bound
    out = make_aggregator(name)(dropped.delta, dropped.num_examples, jax.random.key(0))
    np.testing.assert_allclose(out["d"], [1 / 6, 0, 2 / 6, 0, 3 / 6], rtol=1e-6)


def test_dropouts_are_a_pure_function_of_the_round_key_and_the_client():
  ids = jnp.arange(20000)
  a = np.asarray(survivors(jax.random.key(4), ids, 0.3))
  np.testing.assert_array_equal(a, survivors(jax.random.key(4), ids, 0.3))
  assert abs(a.mean() - 0.7) < 5 * np.sqrt(0.3 * 0.7 / ids.size)  # Bernoulli(1 - p)
  assert (a != np.asarray(survivors(jax.random.key(5), ids, 0.3))).any()
  # A client's draw depends on its id, not on its slot in the cohort.
  np.testing.assert_array_equal(survivors(jax.random.key(4), ids[::-1][:5], 0.3),
                                a[::-1][:5])


P = 0.6


def algorithm():
  """Fed-BBPT on the quadratic task, server momentum (so the optimizer state matters)."""
  est = make_estimator("gaussian_antithetic", 4)
  local = make_local_update(candidate_losses, est, make_client_optimizer("sgd"), num_steps=3,
                            batch_size=4)
  alg = make_fedbbpt(local, optax.sgd(1.0, momentum=0.9), NUM_CLIENTS, NUM_CLIENTS)
  config = ml_collections.ConfigDict({"server": {"dropout": P}})
  return with_faults(alg, make_upload_faults(config, NUM_CLIENTS)), local


def round_survivors(key, r):
  k_sample, _ = round_keys(key, r)
  return np.asarray(survivors(jax.random.fold_in(k_sample, FAULTS_KEY_FOLD),
                              jnp.arange(NUM_CLIENTS), P))


def key_with_pattern():
  """A root key whose round 0 has 1..3 survivors and round 1 none (searched, deterministic)."""
  for seed in range(200):
    key = jax.random.key(seed)
    first, second = round_survivors(key, 0), round_survivors(key, 1)
    if 0 < first.sum() < NUM_CLIENTS and not second.any() and round_survivors(key, 2).any():
      return key, first
  raise AssertionError("no seed with the pattern")


def test_a_round_without_survivors_keeps_params_and_optimizer_state():
  clients, _, n = make_clients()
  alg, local = algorithm()
  hp = HParams.create(lr=0.1, sigma=0.01)
  key, first = key_with_pattern()
  state0 = alg.init({"w": jnp.ones(DIM)})
  step = jax.jit(alg.apply)

  state1, m1 = step(state0, clients, key, hp)
  assert int(m1["survivors"]) == first.sum() and not bool(m1["no_survivors"])
  # Traffic: every member got the model; only the survivors' deltas were sent.
  assert int(m1["upload_bytes"]) == first.sum() * 4 * DIM
  assert int(m1["download_bytes"]) == NUM_CLIENTS * 4 * DIM
  # By hand: the example-weighted mean of the survivors' deltas; momentum's first step is
  # plain SGD with learning rate 1.
  _, k_clients = round_keys(key, 0)
  keys = client_keys(k_clients, jnp.arange(NUM_CLIENTS))
  deltas = np.stack([local(state0.params, jax.tree.map(lambda a, i=i: a[i], clients), keys[i],
                           hp, 0).delta["w"] for i in range(NUM_CLIENTS)])
  w = n * first
  np.testing.assert_allclose(state1.params["w"], 1.0 + (w[:, None] * deltas).sum(0) / w.sum(),
                             rtol=1e-5, atol=1e-6)

  state2, m2 = step(state1, clients, key, hp)
  assert int(m2["survivors"]) == 0 and bool(m2["no_survivors"])
  assert int(m2["upload_bytes"]) == 0
  assert int(state2.round) == 2  # the counter still advances
  for a, b in zip(jax.tree.leaves((state2.params, state2.opt_state)),
                  jax.tree.leaves((state1.params, state1.opt_state)), strict=True):
    np.testing.assert_array_equal(a, b)

  state3, m3 = step(state2, clients, key, hp)
  assert int(m3["survivors"]) > 0
  assert np.abs(np.asarray(state3.params["w"]) - np.asarray(state2.params["w"])).max() > 0


@pytest.mark.parametrize("overrides,message", [
    (dict(server__dropout=1.0), r"config.server.dropout=1.0 must be in \[0, 1\)"),
    (dict(server__dropout=-0.1), r"config.server.dropout=-0.1 must be >= 0"),
    (dict(server__dropout=0.2, server__algorithm="centralized"),
     r"config.server.dropout=0.2: config.server.algorithm='centralized' has no client dropouts"),
    (dict(server__dropout=0.2, server__algorithm="dfedsam"),
     r"config.server.dropout=0.2: config.server.algorithm='dfedsam' has no client dropouts"),
])
def test_dropout_is_checked_at_load_time(overrides, message):
  with pytest.raises(ConfigError, match=message):
    validate_config(with_overrides(get_config("smoke"), **overrides))
