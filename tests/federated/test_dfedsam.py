"""DFedSAM / DFedSAM-MGS: gossip over a topology, the zero-order SAM step, their exact math.

The rounds run on the tiny test classifier (``tests/helpers/tiny_models.py``): they check
the algorithm's arithmetic against a computation by hand, for any frozen model.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.fmnist_effnet import get_config
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.federated import (ClientData, StepHooks, make_client_optimizer,
                                   make_local_update)
from fedbbpt_jax.federated.algorithms.dfedsam import mixing_matrices, spectral_summary
from fedbbpt_jax.federated.algorithms.server import client_keys, round_keys
from fedbbpt_jax.train import validate_config
from fedbbpt_jax.train.build import build_experiment
from fedbbpt_jax.zo import HParams, make_estimator
from tests.helpers.overrides import with_overrides
from tests.helpers.tiny_models import tiny


def smoke(**overrides):
  """5 equal-size IID clients (equal sizes: uniform and example-weighted means agree)."""
  settings = dict(data__num_clients=5, data__partition="iid", data__examples_per_client=60,
                  client__local_steps=2, server__algorithm="dfedsam",
                  baselines__local_only=False)
  return with_overrides(tiny(get_config("smoke")), **{**settings, **overrides})


def _rounds(exp, rounds):
  apply = jax.jit(exp.algorithm.apply)
  state = exp.algorithm.init(exp.init_params)
  for _ in range(rounds):
    state, metrics = apply(state, exp.clients, exp.root_key, exp.hparams)
  return state, metrics


def test_fully_connected_one_gossip_step_equals_server_averaging():
  dec = _rounds(build_experiment(smoke(decentralized__topology="fully_connected",
                                       decentralized__rho=0.0)), 2)[0]
  fed = _rounds(build_experiment(smoke(server__algorithm="fedbbpt")), 2)[0]
  for i in range(5):  # every client holds the server's model
    np.testing.assert_allclose(np.asarray(dec.params["pattern"][i]),
                               np.asarray(fed.params["pattern"]), atol=1e-6)
  assert np.abs(np.asarray(fed.params["pattern"])).max() > 0


@pytest.mark.parametrize("order", ["train_then_mix", "mix_then_train"])
def test_rho_zero_is_dfedavg_local_updates_then_q_gossip_steps(order):
  """One round by hand: plain local updates from each client's model, and W^Q mixing."""
  exp = build_experiment(smoke(decentralized__rho=0.0, decentralized__gossip_steps=2,
                               decentralized__topology="ring", decentralized__order=order))
  alg = exp.algorithm
  assert exp.round_cost.candidates_per_activation == 2 * exp.num_candidates  # K=2, one estimate
  state, _ = _rounds(exp, 1)  # round 1: every client starts from the same generator
  state2, metrics = jax.jit(alg.apply)(state, exp.clients, exp.root_key, exp.hparams)
  w = _ring_w(5)
  x = np.asarray(state.params["pattern"]).reshape(5, -1)
  if order == "mix_then_train":
    x = w @ w @ x
  _, k_clients = round_keys(exp.root_key, state.round)
  keys = client_keys(k_clients, jnp.arange(5))
  plain = jax.jit(make_local_update(exp.task.candidate_losses, make_estimator("spsa_gc", 2),
                                    make_client_optimizer("sgd"), 2,
                                    exp.config.client.batch_size))
  new = []
  for i in range(5):
    p_i = {"pattern": jnp.asarray(x[i].reshape(8, 8, 3))}
    out = plain(p_i, jax.tree.map(lambda a, i=i: a[i], exp.clients), keys[i], exp.hparams,
                state.round)
    new.append(x[i] + np.asarray(out.delta["pattern"]).reshape(-1))
  expected = np.stack(new)
  if order == "train_then_mix":
    expected = w @ w @ expected
  got = np.asarray(state2.params["pattern"]).reshape(5, -1)
  np.testing.assert_allclose(got, expected, atol=2e-5)
  spread = ((got - got.mean(0)) ** 2).sum(1).mean()
  np.testing.assert_allclose(float(metrics["consensus_distance"]), spread, rtol=1e-4)
  assert spread > 0


def _ring_w(m):
  w = np.zeros((m, m))
  for i in range(m):
    w[i, i] = w[i, (i + 1) % m] = w[i, (i - 1) % m] = 1 / 3
  return w


def test_the_sam_step_estimates_again_at_the_ascent_point():
  """One ZO-SAM step on a quadratic equals ask/tell at w, ascent, ask/tell there, descent."""
  target = jnp.asarray([1.0, -2.0, 0.5])
  losses = lambda c, b: jax.vmap(lambda p: jnp.sum((p["w"] - target) ** 2))(c)
  est = make_estimator("gaussian_antithetic", 3)
  data = ClientData(x=jnp.zeros((4, 1)), y=jnp.zeros((4,), jnp.int32),
                    num_examples=jnp.asarray(4, jnp.int32))
  hp = HParams.create(lr=0.1, sigma=0.01)
  rho, key, p0 = 0.2, jax.random.key(3), {"w": jnp.zeros(3)}
  out = make_local_update(losses, est, make_client_optimizer("sgd"), 1, 2,
                          hooks=StepHooks(sam_rho=rho))(p0, data, key, hp, 0)
  # By hand, with the step body's keys: ask with fold_in(key, 0) split in two, the second
  # estimate with that step key's third stream (fresh directions).
  step_key = jax.random.fold_in(key, 0)
  _, k_ask = jax.random.split(step_key)
  state = est.init(p0, jnp.asarray(1))
  cands, state1 = est.ask(k_ask, p0, state, hp)
  g, _, _ = est.tell(p0, cands, losses(cands, None), state1, hp)
  ascent = {"w": p0["w"] + rho * g["w"] / jnp.linalg.norm(g["w"])}
  cands2, state2 = est.ask(jax.random.fold_in(step_key, 2), ascent, state1, hp)
  directions = lambda c, at: np.asarray(c["w"] - at["w"])
  assert not np.allclose(directions(cands2, ascent), directions(cands, p0))  # fresh ones
  g2, _, _ = est.tell(ascent, cands2, losses(cands2, None), state2, hp)
  np.testing.assert_allclose(np.asarray(out.delta["w"]), -0.1 * np.asarray(g2["w"]), rtol=1e-4)
  assert not np.allclose(np.asarray(g2["w"]), np.asarray(g["w"]))


def test_time_varying_graphs_differ_by_round_and_fixed_ones_do_not():
  cfg = smoke(decentralized__topology="erdos_renyi").decentralized
  sizes = np.full(5, 60)
  fixed = mixing_matrices(cfg, 5, 4, sizes)
  cfg.time_varying = True
  varying = mixing_matrices(cfg, 5, 4, sizes)
  assert all(np.array_equal(w, fixed[0]) for w in fixed)
  assert not np.array_equal(varying[0], varying[1]) and not np.array_equal(varying[1], varying[2])
  np.testing.assert_array_equal(varying, mixing_matrices(cfg, 5, 4, sizes))  # resumes redraw
  for w in varying:  # every round's graph is a valid mixing matrix
    np.testing.assert_allclose(w.sum(0), 1, atol=1e-6)
    np.testing.assert_allclose(w, w.T)
  summary = spectral_summary(varying)
  assert 0 < summary["spectral_gap"] <= 1
  assert summary["mixing_rate"] + summary["spectral_gap"] == pytest.approx(1)


@pytest.mark.parametrize("overrides,message", [
    (dict(decentralized__topology="hypercube"), "config.decentralized.topology='hypercube'"),
    (dict(decentralized__time_varying=True), "redraws a random graph"),
    (dict(server__cohort_size=2), "trains every client every round"),
    (dict(decentralized__gossip_steps=0), "config.decentralized.gossip_steps=0 must be >= 1"),
    (dict(decentralized__order="gossip_first"), "config.decentralized.order"),
    (dict(zo__estimator="open_es"), "evolution strategy"),
])
def test_decentralized_config_errors_name_the_field(overrides, message):
  with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
    validate_config(smoke(**overrides))


def test_a_torus_without_a_factorisation_is_refused_naming_the_fields():
  with pytest.raises(ConfigError, match=r"decentralized.topology='torus' with "
                                        r"config.data.num_clients=5"):
    build_experiment(smoke(decentralized__topology="torus"))


def test_zero_order_sam_ends_in_flatter_minima_than_plain_zero_order():
  """f(u, v) = (uv - 1)^2: every point of the hyperbola uv = 1 is a minimum, of sharpness
  (largest Hessian eigenvalue) 2(u^2 + v^2): 4 at u = v = 1, more the more unbalanced.
  From 64 unbalanced starts (fixed seeds), plain ZO keeps the imbalance (gradient descent
  nearly conserves u^2 - v^2) and stops at sharp minima; ZO-SAM drifts to flat ones."""
  losses = lambda c, b: jax.vmap(lambda p: (p["w"][0] * p["w"][1] - 1.0) ** 2)(c)
  data = ClientData(x=jnp.zeros((2, 1)), y=jnp.zeros((2,), jnp.int32),
                    num_examples=jnp.asarray(2, jnp.int32))
  n = 64
  starts = jnp.stack([jax.random.uniform(jax.random.key(1), (n,), minval=2.0, maxval=3.0),
                      jax.random.uniform(jax.random.key(2), (n,), minval=0.0, maxval=0.2)], 1)
  hp = HParams.create(lr=0.02, sigma=0.01)
  final = {}
  for rho in (0.0, 0.1):
    update = make_local_update(losses, make_estimator("gaussian_antithetic", 2),
                               make_client_optimizer("sgd"), 2000, 1,
                               hooks=StepHooks(sam_rho=rho))
    out = jax.jit(jax.vmap(lambda w, k: update({"w": w}, data, k, hp, 0)))(
        starts, jax.random.split(jax.random.key(0), n))
    final[rho] = np.asarray(starts + out.delta["w"])
  for w in final.values():  # both end at (or very near) a minimum
    assert np.max((w[:, 0] * w[:, 1] - 1) ** 2) < 0.01
  sharpness = {rho: 2 * (w ** 2).sum(1) for rho, w in final.items()}
  se = lambda s: s.std(ddof=1) / np.sqrt(n)
  gap = sharpness[0.0].mean() - sharpness[0.1].mean()
  assert gap > 3 * np.hypot(se(sharpness[0.0]), se(sharpness[0.1])), sharpness
  flat = {rho: np.mean(s < 6.0) for rho, s in sharpness.items()}  # within 1.5x of the flattest
  assert flat[0.1] > flat[0.0] + 0.5, flat
