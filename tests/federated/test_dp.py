"""DP-FedAvg: the dp_gaussian aggregator's clipping and noise, the accountant, the DP config.

The aggregator is compared with the same sum computed by hand in numpy; the accountant
with dp_accounting driven directly on the same DpEvent built by hand (and, in
test_dp_epsilon_formulas.py, with RDP and Gaussian formulas computed without it).
"""

import dp_accounting
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from dp_accounting import pld, rdp

from configs import fmnist_effnet
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.federated import (AGGREGATORS, ClientOutput, make_aggregator,
                                   make_dp_gaussian)
from fedbbpt_jax.federated.aggregation.aggregators import Aggregated, split_aggregated
from fedbbpt_jax.federated.algorithms.fedbbpt import averaging_server
from fedbbpt_jax.federated.aggregation.privacy import (DpSettings, calibrate_noise_multiplier,
                                                       epsilon, rounds_within_target)
from fedbbpt_jax.train import validate_config
from tests.helpers.overrides import with_overrides

S = 1.0  # clip norm of the hand-made cases


def hand_deltas():
  """Four clients' two-leaf updates with global norms 3, 0.5, 2 and 10 (above/below S)."""
  rng = np.random.default_rng(0)
  out = []
  for norm in (3.0, 0.5, 2.0, 10.0):
    a, b = rng.normal(size=(3,)), rng.normal(size=(2, 2))
    scale = norm / np.sqrt(np.sum(a ** 2) + np.sum(b ** 2))
    out.append((a * scale, b * scale))
  return ({"a": np.stack([a for a, _ in out]).astype(np.float32),
           "b": np.stack([b for _, b in out]).astype(np.float32)},
          np.asarray([3.0, 0.5, 2.0, 10.0]))


def numpy_dp_sum(deltas, present, clip, denominator):
  """sum_i present_i * clip(d_i) / denominator, per leaf, in float64."""
  out = {}
  norms = np.sqrt(sum(np.sum(np.reshape(x, (x.shape[0], -1)).astype(np.float64) ** 2, 1)
                      for x in deltas.values()))
  factor = np.minimum(1.0, clip / norms) * present
  for k, x in deltas.items():
    out[k] = np.tensordot(factor, x.astype(np.float64), axes=1) / denominator
  return out


def test_clipped_unweighted_sum_over_the_expected_cohort_equals_numpy():
  deltas, norms = hand_deltas()
  weights = jnp.asarray([40.0, 7.0, 0.0, 3.0])  # client 2 dropped (weight 0)
  agg = make_dp_gaussian(S, 0.0, expected_cohort=5)  # 5 expected, 3 present
  out = agg(jax.tree.map(jnp.asarray, deltas), weights, jax.random.key(0))
  assert isinstance(out, Aggregated)
  want = numpy_dp_sum(deltas, np.asarray([1.0, 1.0, 0.0, 1.0]), S, 5.0)
  for k in deltas:
    np.testing.assert_allclose(np.asarray(out.delta[k]), want[k], rtol=1e-6, atol=1e-7)
  # By hand: clients 0 and 3 are clipped to norm 1, client 1 (0.5) is not; client 2 absent.
  a = deltas["a"]
  by_hand = (a[0] / 3.0 + a[1] + a[3] / 10.0) / 5.0
  np.testing.assert_allclose(np.asarray(out.delta["a"]), by_hand, rtol=1e-6)
  # Metrics over the present clients only: 2 of 3 clipped; mean norm (3 + 0.5 + 10) / 3.
  np.testing.assert_allclose(float(out.metrics["dp_clipped_fraction"]), 2 / 3, rtol=1e-6)
  np.testing.assert_allclose(float(out.metrics["dp_mean_delta_norm"]), 13.5 / 3, rtol=1e-5)


def test_example_counts_do_not_weight_the_sum_and_absent_clients_count_for_nothing():
  deltas, _ = hand_deltas()
  deltas = jax.tree.map(jnp.asarray, deltas)
  agg = make_dp_gaussian(S, 0.7, expected_cohort=4)
  key = jax.random.key(3)
  base = agg(deltas, jnp.asarray([1.0, 1.0, 0.0, 1.0]), key).delta
  reweighted = agg(deltas, jnp.asarray([500.0, 2.0, 0.0, 9.0]), key).delta
  garbage = jax.tree.map(lambda x: x.at[2].set(1e6), deltas)  # the absent client's upload
  ignored = agg(garbage, jnp.asarray([1.0, 1.0, 0.0, 1.0]), key).delta
  for k in deltas:
    np.testing.assert_array_equal(np.asarray(base[k]), np.asarray(reweighted[k]))
    np.testing.assert_array_equal(np.asarray(base[k]), np.asarray(ignored[k]))


def _flat(tree):
  return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(tree)])


def test_one_client_moves_the_output_by_at_most_s_over_the_denominator():
  deltas, _ = hand_deltas()
  deltas = jax.tree.map(jnp.asarray, deltas)
  denom = 4.0
  agg = make_dp_gaussian(S, 1.3, expected_cohort=int(denom))
  key = jax.random.key(7)  # same noise on both sides: only the client's part differs
  with_all = _flat(agg(deltas, jnp.ones(4), key).delta)
  for i in range(4):  # remove client i (its weight 0): the add/remove neighbour
    w = jnp.ones(4).at[i].set(0.0)
    moved = np.linalg.norm(with_all - _flat(agg(deltas, w, key).delta))
    assert moved <= S / denom * (1 + 1e-5)
    if i != 1:  # clients 0, 2, 3 exceed S: their contribution is exactly S / denom
      np.testing.assert_allclose(moved, S / denom, rtol=1e-5)
    else:       # client 1 (norm 0.5) is not clipped
      np.testing.assert_allclose(moved, 0.5 / denom, rtol=1e-5)
  # Replace client 3 by an arbitrary huge update: at most 2 S / denom (replace-one).
  wild = jax.tree.map(lambda x: x.at[3].set(-1e4 * x[0]), deltas)
  moved = np.linalg.norm(with_all - _flat(agg(wild, jnp.ones(4), key).delta))
  assert moved <= 2 * S / denom * (1 + 1e-5)


def test_noise_std_is_z_times_s_over_the_denominator():
  z, clip, denom = 1.5, 0.7, 4
  n = 200_000
  zeros = {"w": jnp.zeros((3, 500, 200)), "b": jnp.zeros((3, 100, 1000))}  # 200,000 coords
  out = make_dp_gaussian(clip, z, denom)(zeros, jnp.ones(3), jax.random.key(11))
  x = _flat(out.delta)
  assert x.size == n
  sigma = z * clip / denom  # 0.2625
  # The sample std of n normals has relative standard error 1/sqrt(2n) (0.16 %): allow 5 SE.
  assert abs(np.std(x) / sigma - 1) < 5 / np.sqrt(2 * n)
  assert abs(np.mean(x)) < 5 * sigma / np.sqrt(n)
  # Every leaf draws its own noise; another round key draws other noise, the same key the same.
  assert abs(np.corrcoef(np.ravel(out.delta["w"]), np.ravel(out.delta["b"]))[0, 1]) < 0.01
  again = _flat(make_dp_gaussian(clip, z, denom)(zeros, jnp.ones(3), jax.random.key(11)).delta)
  other = _flat(make_dp_gaussian(clip, z, denom)(zeros, jnp.ones(3), jax.random.key(12)).delta)
  np.testing.assert_array_equal(x, again)
  assert abs(np.corrcoef(x, other)[0, 1]) < 0.01


def test_the_server_steps_on_the_dp_delta_and_reports_its_metrics_under_jit():
  deltas, _ = hand_deltas()
  params = {"a": jnp.ones(3), "b": jnp.zeros((2, 2))}
  init, update = averaging_server(optax.sgd(1.0), make_dp_gaussian(S, 0.0, 4))
  uploads = ClientOutput(delta=jax.tree.map(jnp.asarray, deltas),
                         num_examples=jnp.asarray([5, 5, 5, 0]),
                         metrics={"train_loss": jnp.ones(4)})
  state, m = jax.jit(update)(init(params), uploads, jnp.arange(4), jax.random.key(0))
  want = numpy_dp_sum(deltas, np.asarray([1.0, 1.0, 1.0, 0.0]), S, 4.0)
  np.testing.assert_allclose(np.asarray(state.params["a"]), 1 + want["a"], rtol=1e-6)
  np.testing.assert_allclose(float(m["aggregator"]["dp_clipped_fraction"]), 2 / 3, rtol=1e-6)
  # A plain aggregator still returns the bare delta and adds no metrics.
  _, plain = averaging_server(optax.sgd(1.0), make_aggregator("weighted_mean"))
  _, m_plain = plain(init(params), uploads, jnp.arange(4), jax.random.key(0))
  assert "aggregator" not in m_plain
  assert split_aggregated({"x": 1}) == ({"x": 1}, {})


def test_dp_gaussian_is_registered_and_needs_the_config():
  assert "dp_gaussian" in AGGREGATORS.names()
  with pytest.raises(ValueError, match="config"):
    make_aggregator("dp_gaussian")
  config = with_overrides(fmnist_effnet.get_config("smoke"), server__aggregator="dp_gaussian")
  config.server.dp.noise_multiplier = 0.0
  agg = make_aggregator("dp_gaussian", config, cohort_size=2)
  out = agg({"w": jnp.asarray([[3.0, 4.0], [0.3, 0.4]])}, jnp.ones(2), jax.random.key(0))
  np.testing.assert_allclose(np.asarray(out.delta["w"]), [(0.6 + 0.3) / 2, (0.8 + 0.4) / 2],
                             rtol=1e-6)


# --- the accountant ----------------------------------------------------------------------

def direct_epsilon(accountant, relation, event, rounds, delta):
  acc = (rdp.RdpAccountant(neighboring_relation=relation) if accountant == "rdp"
         else pld.PLDAccountant(neighboring_relation=relation))
  acc.compose(dp_accounting.SelfComposedDpEvent(event, rounds))
  return acc.get_epsilon(delta)


NR = dp_accounting.NeighboringRelation


@pytest.mark.parametrize("accountant,sampling", [("rdp", "poisson"), ("rdp", "fixed"),
                                                 ("pld", "poisson")])
def test_epsilon_equals_dp_accounting_on_the_same_event(accountant, sampling):
  z, rounds, delta, cohort, population = 1.2, 7, 1e-5, 3, 20
  if sampling == "poisson":  # add/remove one client: the clipped sum moves by S
    event = dp_accounting.PoissonSampledDpEvent(3 / 20, dp_accounting.GaussianDpEvent(z))
    relation = NR.ADD_OR_REMOVE_ONE
  else:  # replace one client: the clipped sum moves by 2 S, so the multiplier is z / 2
    event = dp_accounting.SampledWithoutReplacementDpEvent(
        20, 3, dp_accounting.GaussianDpEvent(z / 2))
    relation = NR.REPLACE_ONE
  want = direct_epsilon(accountant, relation, event, rounds, delta)
  got = epsilon(z, rounds, delta, cohort, population, sampling, accountant)
  assert got == pytest.approx(want, rel=1e-12)
  assert 0.5 < got < 50  # a finite, non-trivial ε for these inputs


@pytest.mark.parametrize("accountant,sampling", [("rdp", "poisson"), ("rdp", "fixed"),
                                                 ("pld", "poisson")])
def test_epsilon_grows_with_rounds_and_shrinks_with_noise(accountant, sampling):
  eps = lambda z, t: epsilon(z, t, 1e-5, 2, 10, sampling, accountant)
  by_rounds = [eps(1.0, t) for t in (1, 2, 5, 20)]
  by_noise = [eps(z, 5) for z in (0.8, 1.0, 2.0, 4.0)]
  assert all(a < b for a, b in zip(by_rounds, by_rounds[1:])), by_rounds
  assert all(a > b for a, b in zip(by_noise, by_noise[1:])), by_noise
  assert eps(1.0, 0) == 0.0 and eps(0.0, 1) == float("inf")


@pytest.mark.parametrize("sampling,target", [("poisson", 2.0), ("fixed", 8.0)])
def test_calibrated_noise_is_the_smallest_that_meets_the_target(sampling, target):
  rtol = 1e-3
  z = calibrate_noise_multiplier(target, 1e-5, 10, 1, 5, sampling, "rdp", rtol)
  eps = lambda v: epsilon(v, 10, 1e-5, 1, 5, sampling, "rdp")
  assert eps(z) <= target
  assert eps(z * (1 - 2 * rtol)) > target  # a noticeably smaller z misses it
  assert eps(z) > 0.98 * target            # and the target is nearly used up


def test_rounds_within_target_is_the_last_round_below_it():
  s = DpSettings(clip_norm=1.0, noise_multiplier=1.0, delta=1e-5, accountant="rdp",
                 sampling="poisson", target_epsilon=3.0, cohort_size=1, num_clients=5)
  t = rounds_within_target(s, 50)
  assert s.epsilon(t) <= 3.0 < s.epsilon(t + 1)
  assert 1 <= t < 50
  assert rounds_within_target(s, t - 1) == t - 1  # the round limit comes first
  no_target = DpSettings(**{**s.__dict__, "target_epsilon": 0.0})
  assert rounds_within_target(no_target, 50) == 50


# --- the config -------------------------------------------------------------------------

def dp_config(**dp_fields):
  config = with_overrides(fmnist_effnet.get_config("smoke"), server__aggregator="dp_gaussian")
  for k, v in dp_fields.items():
    config.server.dp[k] = v
  return config


@pytest.mark.parametrize("field,value,message", [
    ("clip_norm", 0.0, "server.dp.clip_norm=0.0 must be > 0"),
    ("noise_multiplier", -0.5, "server.dp.noise_multiplier=-0.5 must be >= 0, or -1"),
    ("delta", 1.0, r"server.dp.delta=1.0 must be in \(0, 1\)"),
    ("delta", 0.0, "server.dp.delta=0.0 must be > 0"),
    ("accountant", "moments", "server.dp.accountant='moments' is not one of"),
    ("sampling", "shuffle", "server.dp.sampling='shuffle' is not one of"),
    ("target_epsilon", -1.0, "server.dp.target_epsilon=-1.0 must be >= 0"),
])
def test_bad_dp_fields_are_refused_naming_the_field(field, value, message):
  with pytest.raises(ConfigError, match=message):
    validate_config(dp_config(**{field: value}))


def test_impossible_dp_combinations_are_refused():
  with pytest.raises(ConfigError, match="accountant='pld' cannot account for "
                                        "config.server.dp.sampling='fixed'"):
    validate_config(dp_config(accountant="pld", sampling="fixed"))
  with pytest.raises(ConfigError, match="noise_multiplier=-1 calibrates"):
    validate_config(dp_config(noise_multiplier=-1.0))
  with pytest.raises(ConfigError, match="below ε after one round"):
    validate_config(dp_config(noise_multiplier=0.5, target_epsilon=0.1))
  for algorithm in ("centralized", "fedone"):  # their servers ignore the aggregator
    config = with_overrides(dp_config(), server__algorithm=algorithm)
    with pytest.raises(ConfigError, match=f"server.algorithm='{algorithm}'.*fedbbpt"):
      validate_config(config)
  # DFedSAM applies robust rules to its gossip, never DP's noisy sum.
  with pytest.raises(ConfigError, match="server.algorithm='dfedsam' mixes neighbours with one "
                                        "of \\['weighted_mean', 'median', 'trimmed_mean'\\]"):
    validate_config(with_overrides(dp_config(), server__algorithm="dfedsam"))
  no_block = dp_config()
  del no_block.server["dp"]
  with pytest.raises(ConfigError, match="needs the config.server.dp block"):
    validate_config(no_block)


def test_valid_dp_configs_pass_and_older_configs_without_the_block_still_do():
  validate_config(dp_config(accountant="pld"))
  validate_config(dp_config(sampling="fixed", noise_multiplier=-1.0, target_epsilon=20.0))
  old = fmnist_effnet.get_config("smoke")
  del old.server["dp"]
  validate_config(old)  # weighted_mean, no DP block: as before
