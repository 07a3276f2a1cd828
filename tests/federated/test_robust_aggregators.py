"""Robust aggregators against numpy by hand; weight 0 = absent, exactly; config checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.fmnist_effnet import get_config
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.federated import AGGREGATORS, make_aggregator, weighted_mean
from fedbbpt_jax.federated.aggregation.robust_aggregators import krum_scores
from fedbbpt_jax.train import validate_config
from tests.helpers.overrides import with_overrides

KEY = jax.random.key(0)
# 5 clients x 3 coordinates (dyadic values: every sum below is exact in float32).
HONEST = np.asarray([[1.0, -2.0, 0.5],
                     [2.0, -1.0, 0.25],
                     [1.5, -1.5, 0.5],
                     [0.5, -2.5, 1.0]], np.float32)
OUTLIER = np.asarray([[64.0, 32.0, -128.0]], np.float32)
DELTAS = np.concatenate([HONEST, OUTLIER])


def rule(name, **robust):
  return make_aggregator(name, {"server": {"robust": robust}})


def tree(x):
  """A two-leaf pytree: the global norm and Krum distances span both leaves."""
  x = jnp.asarray(x)
  return {"a": x[:, :2], "b": x[:, 2:]}


def flat(t):
  return np.concatenate([np.asarray(t["a"]), np.asarray(t["b"])], axis=-1)


def with_absent(x, w, absent_row, at=2):
  """Inserts ``absent_row`` with weight 0 at position ``at``."""
  x2 = np.insert(np.asarray(x), at, absent_row, axis=0)
  return x2, np.insert(np.asarray(w, np.float32), at, 0.0)


ABSENT = np.asarray([1e6, -1e6, np.nan], np.float32)  # would wreck any rule that read it


def test_the_robust_rules_are_registered_next_to_the_weighted_mean():
  assert set(AGGREGATORS.names()) >= {"weighted_mean", "median", "trimmed_mean",
                                      "norm_bounded_mean", "krum", "multi_krum"}


def test_median_ignores_the_outlier_and_equals_numpy():
  out = flat(rule("median")(tree(DELTAS), jnp.ones(5), KEY))
  np.testing.assert_array_equal(out, np.median(DELTAS, axis=0))
  np.testing.assert_array_equal(out, [1.5, -1.5, 0.5])
  # Even count (the four honest clients): the mean of the two middle values.
  even = flat(rule("median")(tree(HONEST), jnp.ones(4), KEY))
  np.testing.assert_array_equal(even, [1.25, -1.75, 0.5])


def test_trimmed_mean_drops_beta_n_per_end_and_equals_numpy():
  out = flat(rule("trimmed_mean", trim_fraction=0.2)(tree(DELTAS), jnp.ones(5), KEY))
  by_hand = np.sort(DELTAS, axis=0)[1:4].mean(axis=0)  # floor(0.2 * 5) = 1 per end
  np.testing.assert_allclose(out, by_hand, rtol=1e-6)
  np.testing.assert_allclose(out, [(1 + 1.5 + 2) / 3, (-2 - 1.5 - 1) / 3, (0.25 + 0.5 + 0.5) / 3],
                             rtol=1e-6)
  # beta = 0.1: floor(0.5) = 0 values trimmed: the plain unweighted mean (outlier included).
  plain = flat(rule("trimmed_mean", trim_fraction=0.1)(tree(DELTAS), jnp.ones(5), KEY))
  np.testing.assert_allclose(plain, DELTAS.mean(axis=0), rtol=1e-6)


def test_norm_bounded_mean_clips_the_global_norm_then_weights_by_examples():
  x = np.asarray([[3.0, 0.0, 4.0],     # norm 5 -> scaled to 2: (1.2, 0, 1.6)
                  [0.0, 1.0, 0.0],     # norm 1 -> kept
                  [0.0, 0.0, -40.0]], np.float32)  # norm 40 -> (0, 0, -2)
  w = np.asarray([1.0, 2.0, 1.0], np.float32)
  out = flat(rule("norm_bounded_mean", norm_bound=2.0)(tree(x), jnp.asarray(w), KEY))
  clipped = np.asarray([[1.2, 0.0, 1.6], [0.0, 1.0, 0.0], [0.0, 0.0, -2.0]])
  np.testing.assert_allclose(out, (w[:, None] * clipped).sum(0) / w.sum(), rtol=1e-6)
  np.testing.assert_allclose(out, [0.3, 0.5, -0.1], rtol=1e-5, atol=1e-7)


def numpy_krum_scores(x, f):
  n = len(x)
  d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
  return np.asarray([np.sort(np.delete(d[i], i))[:n - f - 2].sum() for i in range(n)])


def test_krum_scores_and_choice_equal_numpy():
  scores = numpy_krum_scores(DELTAS.astype(np.float64), f=1)
  np.testing.assert_allclose(krum_scores(tree(DELTAS), jnp.ones(5), 1), scores, rtol=1e-6)
  best = int(np.argmin(scores))
  assert best == 2  # the honest client in the middle of the cluster
  np.testing.assert_allclose(scores[2], 0.5 + 0.5625)  # its n - f - 2 = 2 nearest, by hand
  np.testing.assert_allclose(scores[0], 0.5 + 0.75)
  out = flat(rule("krum", num_byzantine=1)(tree(DELTAS), jnp.ones(5), KEY))
  np.testing.assert_array_equal(out, DELTAS[best])


def test_multi_krum_averages_the_m_best_unweighted():
  scores = numpy_krum_scores(DELTAS.astype(np.float64), f=1)
  best3 = np.argsort(scores)[:3]
  out = flat(rule("multi_krum", num_byzantine=1, multi_krum_m=3)(
      tree(DELTAS), jnp.asarray([1.0, 5.0, 1.0, 1.0, 9.0]), KEY))  # weights ignored
  np.testing.assert_allclose(out, DELTAS[best3].mean(0), rtol=1e-6)
  # m = 0: n - f = 4 clients, which leaves the outlier out.
  auto = flat(rule("multi_krum", num_byzantine=1)(tree(DELTAS), jnp.ones(5), KEY))
  np.testing.assert_allclose(auto, HONEST.mean(0), rtol=1e-6)


CASES = {
    "weighted_mean": {},
    "median": {},
    "trimmed_mean": {"trim_fraction": 0.2},
    "norm_bounded_mean": {"norm_bound": 3.0},
    "krum": {"num_byzantine": 1},
    "multi_krum": {"num_byzantine": 1, "multi_krum_m": 2},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_weight_zero_client_is_absent_exactly(name):
  """Inserting an absent client (weight 0, absurd values) changes nothing, bit for bit."""
  x = np.concatenate([HONEST, OUTLIER, HONEST[:1] + 0.125])  # 6 clients, 1 outlier
  w = np.asarray([1.0, 2.0, 1.0, 4.0, 1.0, 2.0], np.float32)
  agg = rule(name, **CASES[name])
  without = flat(agg(tree(x), jnp.asarray(w), KEY))
  for at in (0, 3, 6):
    x2, w2 = with_absent(x, w, ABSENT, at)
    with_it = flat(agg(tree(x2), jnp.asarray(w2), KEY))
    if name in ("weighted_mean", "norm_bounded_mean"):  # a longer dot product: rounding only
      np.testing.assert_allclose(with_it, without, rtol=1e-6, err_msg=name)
    else:
      np.testing.assert_array_equal(with_it, without, err_msg=name)
    assert np.all(np.isfinite(with_it)), name


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_rules_jit_and_vmap_over_weights(name):
  """A sweep vmaps whole runs: the rule under vmap equals it applied one weight vector
  at a time, and with nobody present it returns zeros."""
  agg = rule(name, **CASES[name])
  ws = jnp.asarray([[1, 1, 1, 1, 1], [0, 1, 1, 1, 1], [1, 0, 2, 1, 0], [0, 0, 0, 0, 0]],
                   jnp.float32)
  batched = jax.jit(jax.vmap(lambda w: agg(tree(DELTAS), w, KEY)))(ws)
  for i, w in enumerate(ws):
    np.testing.assert_allclose(flat(jax.tree.map(lambda a, i=i: a[i], batched)),
                               flat(agg(tree(DELTAS), w, KEY)), rtol=1e-6, err_msg=name)
  np.testing.assert_array_equal(flat(jax.tree.map(lambda a: a[3], batched)), np.zeros(3))


def test_weighted_mean_of_three_survivors_of_five_by_hand():
  """Survivors with 10/20/30 examples get weights 1/6, 2/6, 3/6."""
  out = weighted_mean({"d": jnp.eye(5)}, jnp.asarray([10.0, 0.0, 20.0, 0.0, 30.0]))
  np.testing.assert_allclose(out["d"], [1 / 6, 0, 2 / 6, 0, 3 / 6], rtol=1e-6)


def test_krum_with_too_few_clients_is_refused_naming_the_fields():
  with pytest.raises(ConfigError, match=r"n - f - 2 >= 1.*n=3.*"
                                        r"config.server.robust.num_byzantine=1 gives 0"):
    rule("krum", num_byzantine=1)(tree(DELTAS[:3]), jnp.ones(3), KEY)
  config = with_overrides(get_config("smoke"), server__aggregator="krum")  # 3 clients, f=1
  with pytest.raises(ConfigError, match=r"config.server.robust.num_byzantine=1 gives 0"):
    validate_config(config)
  validate_config(with_overrides(config, server__robust__num_byzantine=0))  # 3 - 0 - 2 = 1
  with pytest.raises(ConfigError, match=r"config.server.robust.multi_krum_m=5 must be <= "
                                        r"n - f = 4"):
    validate_config(with_overrides(get_config("smoke"), server__aggregator="multi_krum",
                                   server__robust__num_byzantine=0, data__num_clients=4,
                                   server__robust__multi_krum_m=5))


@pytest.mark.parametrize("field,value,message", [
    ("server__robust__trim_fraction", 0.5, r"trim_fraction=0.5 must be in \[0, 0.5\)"),
    ("server__robust__trim_fraction", -0.1, r"trim_fraction=-0.1 must be >= 0"),
    ("server__robust__norm_bound", 0.0, r"norm_bound=0.0 must be > 0"),
    ("server__robust__num_byzantine", -1, r"num_byzantine=-1 must be >= 0"),
    ("server__robust__multi_krum_m", -1, r"multi_krum_m=-1 must be >= 0"),
    ("server__aggregator", "medain", r"config.server.aggregator='medain' is not one of"),
])
def test_robust_fields_are_checked_at_load_time(field, value, message):
  with pytest.raises(ConfigError, match=message):
    validate_config(with_overrides(get_config("smoke"), **{field: value}))


def test_configs_without_the_new_fields_still_validate():
  config = get_config("smoke")
  del config.server["robust"], config.server["dropout"], config["attack"]
  validate_config(config)
  validate_config(with_overrides(config, server__aggregator="trimmed_mean"))  # defaults
