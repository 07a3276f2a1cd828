"""BDPL policy gradient: unbiased for its known target, zero-safe, clipped; FedOne cohort."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedbbpt_jax.zo import CATEGORICAL, ESTIMATORS, HParams, make_estimator
from fedbbpt_jax.zo.bdpl import make_bdpl, sample_one_hot

HP = HParams.create(lr=0.1, sigma=1.0)
THETA = {"probs": jnp.asarray([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]], jnp.float32)}
TABLE = jnp.asarray(np.random.default_rng(0).normal(size=(3, 3)), jnp.float32)  # L(j1, j2)


def loss_of(one_hot):
  j = jnp.argmax(one_hot["probs"], -1)
  return TABLE[j[0], j[1]]


def expected_loss(params):
  p = params["probs"]
  return jnp.sum(p[0][:, None] * p[1][None, :] * TABLE)


def test_unbiased_for_twice_the_centred_policy_gradient():
  est = make_bdpl(4, clip_norm=None)

  def one(key):
    state = est.init(THETA, 1)
    cands, state = est.ask(key, THETA, state, HP)
    grad, _, _ = est.tell(THETA, cands, jax.vmap(loss_of)(cands), state, HP)
    return grad["probs"]

  samples = np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(0), 40000)))
  # BDPL's estimate: E[g] = 2 (grad E[L] - E[L] 1) for rows summing to one (docs/algorithms.md).
  target = 2 * (np.asarray(jax.grad(expected_loss)(THETA)["probs"])
                - float(expected_loss(THETA)))
  mean = samples.mean(0)
  stderr = samples.std(0) / np.sqrt(len(samples))
  np.testing.assert_array_less(np.abs(mean - target), 5 * stderr + 1e-4)
  assert stderr.max() < 0.05 * np.abs(target).max()


def test_zero_probabilities_are_never_sampled_and_give_no_nan():
  theta = {"probs": jnp.asarray([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]])}
  draws = np.asarray(sample_one_hot(jax.random.key(1), theta["probs"], 500))
  assert draws[:, 0, 1].all() and not draws[:, 1, 1].any()
  est = make_bdpl(5)
  cands, state = est.ask(jax.random.key(2), theta, est.init(theta, 1), HP)
  grad, state, stats = est.tell(theta, cands, jnp.arange(5.0), state, HP)
  assert np.isfinite(np.asarray(grad["probs"])).all() and int(state.step) == 2
  assert float(stats["loss"]) == 2.0


def test_hand_computed_estimate_and_global_norm_clip():
  theta = {"probs": jnp.asarray([[0.25, 0.75]])}
  cands = {"probs": jnp.asarray([[[1.0, 0.0]], [[0.0, 1.0]], [[0.0, 1.0]]])}
  losses = jnp.asarray([3.0, 0.0, 0.0])            # mean 1; centred (2, -1, -1)
  est = make_bdpl(3, clip_norm=None)
  grad, _, stats = est.tell(theta, cands, losses, est.init(theta, 1), HP)
  # 2/(I-1) = 1: entry 0 gets 2/0.25 = 8; entry 1 gets (-1 - 1)/0.75.
  np.testing.assert_allclose(np.asarray(grad["probs"]), [[8.0, -2.0 / 0.75]], rtol=1e-6)
  clipped, _, _ = make_bdpl(3).tell(theta, cands, losses, est.init(theta, 1), HP)
  np.testing.assert_allclose(np.linalg.norm(np.asarray(clipped["probs"])), 3.0, rtol=1e-5)
  assert float(stats["grad_norm"]) == pytest.approx(np.hypot(8.0, 2 / 0.75), rel=1e-5)


def test_registry_builds_bdpl_by_name():
  assert "bdpl" in ESTIMATORS.names(CATEGORICAL)
  est = make_estimator("bdpl", 6)
  assert est.name == "bdpl" and est.num_candidates == 6
  with pytest.raises(ValueError, match="num_samples"):
    make_bdpl(1)


def test_fedone_activates_one_client_and_takes_its_result():
  from fedbbpt_jax.federated import ClientData, ClientOutput, make_fedone

  def local_update(params, data, key, hparams, round_idx):
    del key, hparams, round_idx
    target = data.x[0]
    return ClientOutput(delta={"w": target - params["w"]}, num_examples=jnp.float32(1),
                        metrics={"train_loss": jnp.float32(0)})

  x = jnp.arange(4.0)[:, None, None] * jnp.ones((4, 1, 2))
  data = ClientData(x=x, y=jnp.zeros((4, 1), jnp.int32), num_examples=jnp.ones(4, jnp.int32))
  algo = make_fedone(local_update, 4)
  state = algo.init({"w": jnp.zeros(2)})
  for _ in range(3):
    state, m = jax.jit(algo.apply)(state, data, jax.random.key(0), HP)
    ids = np.asarray(m["cohort"])
    assert ids.shape == (1,)
    np.testing.assert_allclose(np.asarray(state.params["w"]), float(ids[0]))
  assert algo.name == "fedone"
