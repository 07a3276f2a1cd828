"""Centralized, FedBPT and the server optimizers on the synthetic quadratic federated problem."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fedbbpt_jax.federated import (ClientData, ClientOutput, centralized_steps,
                                   make_centralized, make_client_optimizer, make_fedbbpt,
                                   make_fedbpt, make_local_update, make_server_optimizer)
from fedbbpt_jax.federated.algorithms.fedbpt import (FedBPTState, fedbpt_server_update,
                                                     global_sigma, local_parents)
from fedbbpt_jax.zo import HParams, make_estimator
from fedbbpt_jax.zo.cma_es import cma_start, cma_strategy

NUM_CLIENTS, MAX_N, DIM, STEPS = 4, 12, 5, 3
SIZES = np.asarray([12, 6, 9, 3], np.int32)


def make_clients(iid=False):
  """Client i's examples are noisy copies of its target (one shared if ``iid``); padding 1e3."""
  rng = np.random.default_rng(0)
  targets = rng.normal(size=(NUM_CLIENTS, DIM)).astype(np.float32)
  if iid:
    targets = np.repeat(targets[:1], NUM_CLIENTS, axis=0)
  x = targets[:, None, :] + 0.1 * rng.normal(size=(NUM_CLIENTS, MAX_N, DIM)).astype(np.float32)
  for i, k in enumerate(SIZES):
    x[i, k:] = 1e3
  clients = ClientData(x=jnp.asarray(x), y=jnp.zeros((NUM_CLIENTS, MAX_N), jnp.int32),
                       num_examples=jnp.asarray(SIZES))
  optimum = (SIZES[:, None] * targets).sum(0) / SIZES.sum()  # minimiser of sum_i n_i F_i
  return clients, optimum


def candidate_losses(candidates, batch):
  return jax.vmap(lambda p: jnp.mean(jnp.sum((batch["x"] - p["w"]) ** 2, -1)))(candidates)


def distance(params, optimum):
  return float(np.linalg.norm(np.asarray(params["w"]) - optimum))


def test_centralized_equals_one_client_holding_the_pooled_data():
  clients, optimum = make_clients()
  est = make_estimator("gaussian_antithetic", 4)
  steps = centralized_steps(NUM_CLIENTS, STEPS)
  local = make_local_update(candidate_losses, est, make_client_optimizer("sgd"), steps, 4)
  hp = HParams.create(lr=0.1, sigma=0.01, lr_decay=0.6)  # decay averages minibatch noise out
  # The pooled client by hand: real rows in client order, padded to clients x max_n rows.
  x = np.concatenate([np.asarray(clients.x[i, :k]) for i, k in enumerate(SIZES)])
  x = np.concatenate([x, np.full((NUM_CLIENTS * MAX_N - len(x), DIM), 1e3, np.float32)])
  pooled = ClientData(x=jnp.asarray(x)[None], y=jnp.zeros((1, NUM_CLIENTS * MAX_N), jnp.int32),
                      num_examples=jnp.asarray([SIZES.sum()], jnp.int32))
  algorithms = [(make_centralized(local, NUM_CLIENTS), clients),
                (make_fedbbpt(local, optax.sgd(1.0), 1, 1), pooled)]
  finals = []
  for alg, data in algorithms:
    state, apply = alg.init({"w": jnp.zeros(DIM)}), jax.jit(alg.apply)
    for _ in range(6):
      state, metrics = apply(state, data, jax.random.key(2), hp)
    finals.append(state.params["w"])
  np.testing.assert_allclose(finals[0], finals[1], rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(metrics["cohort"], [0])
  # And it learns the pooled objective's minimiser.
  assert distance({"w": finals[0]}, optimum) < 0.25 * np.linalg.norm(optimum), finals[0]


def test_fedbpt_global_mean_approaches_the_optimum():
  # IID clients: the server recombines client means ranked by their own losses, which
  # on very different client objectives (the non-IID problem above) is no consensus.
  clients, optimum = make_clients(iid=True)
  alg = make_fedbpt(candidate_losses, population_size=6, num_steps=STEPS, batch_size=4,
                    num_clients=NUM_CLIENTS, cohort_size=NUM_CLIENTS, initial_sigma=0.5)
  state, apply = alg.init({"w": jnp.zeros(DIM)}), jax.jit(alg.apply)
  start = distance(state.params, optimum)
  for _ in range(8):
    state, metrics = apply(state, clients, jax.random.key(0), HParams.create(lr=1.0, sigma=0.5))
  assert np.isfinite(float(metrics["train_loss"]))
  assert distance(state.params, optimum) < 0.3 * start, (distance(state.params, optimum), start)
  assert isinstance(state.opt_state, FedBPTState) and int(state.round) == 8


def test_fedbpt_aggregation_matches_the_reference_formula():
  m, n, lam = 3, 3, 4
  sigmas = np.asarray([[0.5, 0.4], [0.5, 0.6], [0.5, 0.3]], np.float32)
  means = np.asarray([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
  fitness = np.asarray([0.3, 0.1, 0.2], np.float32)
  # sigma_g = sqrt(sum sigma^2 / (m mu_loc)), mu_loc = floor(4 / 2) = 2.
  assert local_parents(lam) == 2
  sigma_g = np.sqrt((sigmas ** 2).sum() / (m * 2))
  np.testing.assert_allclose(sigma_g, np.sqrt(1.36 / 6), rtol=1e-6)
  np.testing.assert_allclose(global_sigma(jnp.asarray(sigmas), lam), sigma_g, rtol=1e-6)

  state = FedBPTState(search=cma_start(cma_strategy(n, m), jnp.zeros(n), 0.5),
                      local_sigma=jnp.asarray(0.5))
  new = fedbpt_server_update(state, jnp.asarray(means), jnp.asarray(fitness),
                             jnp.asarray(sigmas), lam, jax.random.key(0))
  # One CMA-ES generation from mean 0, C = I, zero paths, every client a parent.
  raw = np.log(m + 0.5) - np.log(np.arange(1, m + 1))
  w = raw / raw.sum()
  ranked = means[np.argsort(fitness)]
  np.testing.assert_allclose(new.search.mean, w @ ranked, rtol=1e-5, atol=1e-6)
  mu_eff = 1 / (w ** 2).sum()
  c_std = (mu_eff + 2) / (n + mu_eff + 5)
  d_std = 1 + 2 * max(0.0, np.sqrt((mu_eff - 1) / (n + 1)) - 1) + c_std
  chi_n = np.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n ** 2))
  p_std = np.sqrt(c_std * (2 - c_std) * mu_eff) * (w @ ranked) / sigma_g
  sigma_after = sigma_g * np.exp(c_std / d_std * (np.linalg.norm(p_std) / chi_n - 1))
  local_sigma = sigma_after / sigma_g * 0.5
  np.testing.assert_allclose(new.local_sigma, local_sigma, rtol=1e-4)
  np.testing.assert_allclose(new.search.std, local_sigma, rtol=1e-4)


def constant_delta_update(params, data, key, hparams, round_idx):
  """A fake client whose delta is its first example (to test the server step alone)."""
  del params, key, hparams, round_idx
  return ClientOutput(delta={"w": data.x[0]}, num_examples=data.num_examples.astype(jnp.float32),
                      metrics={"train_loss": jnp.float32(0.0)})


def test_fedavgm_and_fedadam_server_steps_match_hand_computation():
  clients, _ = make_clients()
  mean_delta = (SIZES[:, None] * np.asarray(clients.x[:, 0])).sum(0) / SIZES.sum()
  hp = HParams.create(lr=0.1, sigma=0.01)
  params = []
  for name, lr in (("momentum", 0.5), ("adam", 0.1)):
    alg = make_fedbbpt(constant_delta_update, make_server_optimizer(name, lr, momentum=0.9),
                       NUM_CLIENTS, NUM_CLIENTS)
    state = alg.init({"w": jnp.zeros(DIM)})
    for _ in range(2):
      state, _ = alg.apply(state, clients, jax.random.key(0), hp)
    params.append(np.asarray(state.params["w"]))
  # FedAvgM: v1 = g, v2 = 0.9 v1 + g with g = -mean_delta; p2 = -0.5 (v1 + v2).
  np.testing.assert_allclose(params[0], 0.5 * (1 + 1.9) * mean_delta, rtol=1e-5)
  # FedAdam with a constant pseudo-gradient: each step is lr * sign(mean_delta).
  np.testing.assert_allclose(params[1], 2 * 0.1 * np.sign(mean_delta), rtol=1e-4)
