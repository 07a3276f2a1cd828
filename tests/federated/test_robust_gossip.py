"""DFedSAM with a robust neighbour rule: each client takes the median of its in-neighbours.

The round runs on the tiny test classifier (``tests/helpers/tiny_models.py``): it checks
the mixing arithmetic against a computation by hand, for any frozen model.
"""

import jax
import jax.numpy as jnp
import numpy as np

from configs.fmnist_effnet import get_config
from fedbbpt_jax.federated import make_aggregator
from fedbbpt_jax.federated.simulated_faults.attacks import seed_malicious_ids
from fedbbpt_jax.federated.algorithms.dfedsam import neighbour_mixing
from fedbbpt_jax.federated.algorithms.server import client_keys, round_keys
from fedbbpt_jax.federated.topology import gossip
from fedbbpt_jax.train import validate_config
from fedbbpt_jax.train.build import build_experiment
from tests.helpers.overrides import with_overrides
from tests.helpers.tiny_models import tiny

KEY = jax.random.key(0)


def ring(m):
  w = np.zeros((m, m), np.float32)
  for i in range(m):
    w[i, i] = w[i, (i + 1) % m] = w[i, (i - 1) % m] = 1 / 3
  return w


def ring_median(x):
  m = len(x)
  return np.stack([np.median(x[[(i - 1) % m, i, (i + 1) % m]], axis=0) for i in range(m)])


X = np.asarray([[0.0, 1.0], [2.0, -1.0], [100.0, 50.0], [1.0, 0.5], [-3.0, 2.0]], np.float32)


def test_median_mixing_takes_each_clients_neighbourhood_median_q_times():
  median = make_aggregator("median")
  once = neighbour_mixing(ring(5), {"x": jnp.asarray(X)}, 1, median, KEY)["x"]
  np.testing.assert_array_equal(once, ring_median(X))
  assert np.abs(np.asarray(once)).max() < 100  # the outlier (client 2) reaches nobody
  twice = neighbour_mixing(ring(5), {"x": jnp.asarray(X)}, 2, median, KEY)["x"]
  np.testing.assert_array_equal(twice, ring_median(ring_median(X)))


def test_weighted_mean_mixing_is_the_matrix_gossip():
  mean = make_aggregator("weighted_mean")
  np.testing.assert_allclose(neighbour_mixing(ring(5), {"x": jnp.asarray(X)}, 2, mean, KEY)["x"],
                             gossip(ring(5), {"x": jnp.asarray(X)}, 2)["x"], rtol=1e-5)
  # trim_fraction 0 is the unweighted neighbourhood mean (= the ring's 1/3 weights).
  trimmed = make_aggregator("trimmed_mean", {"server": {"robust": {"trim_fraction": 0.0}}})
  np.testing.assert_allclose(neighbour_mixing(ring(5), {"x": jnp.asarray(X)}, 1, trimmed,
                                              KEY)["x"], ring(5) @ X, rtol=1e-5)


def test_a_dfedsam_round_with_an_attacker_mixes_by_neighbourhood_median():
  config = with_overrides(tiny(get_config("smoke")), data__num_clients=5, data__partition="iid",
                          data__examples_per_client=60, client__local_steps=2,
                          server__algorithm="dfedsam", server__aggregator="median",
                          decentralized__rho=0.0, decentralized__topology="ring",
                          attack__kind="sign_flip", attack__fraction=0.2, attack__scale=5.0,
                          baselines__local_only=False)
  validate_config(config)
  exp = build_experiment(config)
  alg = exp.algorithm
  state = alg.init(exp.init_params)
  new, metrics = jax.jit(alg.apply)(state, exp.clients, exp.root_key, exp.hparams)
  assert int(metrics["attackers"]) == 1
  assert exp.algorithm.summary["mixing_rule"] == "median"
  # By hand: every client's local update, the attacker's flipped and scaled, then the
  # median over each client's ring neighbourhood.
  (bad,) = seed_malicious_ids(config.seed, 5, 0.2)
  _, k_clients = round_keys(exp.root_key, 0)
  keys = client_keys(k_clients, jnp.arange(5))
  start = np.asarray(state.params["pattern"]).reshape(5, -1)
  models = []
  client_update = jax.jit(alg.client_update)   # one client per call, compiled once
  for i in range(5):
    out = client_update(jax.tree.map(lambda a, i=i: a[i], state.params),
                        jax.tree.map(lambda a, i=i: a[i], exp.clients), keys[i],
                        exp.hparams, 0)
    delta = np.asarray(out.delta["pattern"]).reshape(-1)
    models.append(start[i] + (-5.0 * delta if i == bad else delta))
  expected = ring_median(np.stack(models))
  np.testing.assert_allclose(np.asarray(new.params["pattern"]).reshape(5, -1), expected,
                             atol=2e-5)
