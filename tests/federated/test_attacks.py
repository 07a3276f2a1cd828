"""Byzantine clients in simulation: who they are (reproducible), what they upload, config."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.fmnist_effnet import get_config
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.federated import ClientData, ClientOutput, make_upload_faults
from fedbbpt_jax.federated.simulated_faults.attacks import (corrupt_uploads, flip_labels,
                                                            malicious_ids, malicious_mask,
                                                            num_malicious, seed_malicious_ids)
from fedbbpt_jax.train import validate_config
from fedbbpt_jax.train.build import build_experiment
from fedbbpt_jax.train.vmapped_sweep import SweepMismatchError, check_members
from tests.helpers.overrides import with_overrides


def smoke(**overrides):
  return with_overrides(get_config("smoke"), **overrides)


@pytest.mark.parametrize("num_clients,fraction,count", [
    (5, 0.2, 1), (10, 0.2, 2), (10, 0.25, 3), (100, 0.3, 30), (7, 0.5, 4), (3, 0.1, 0)])
def test_the_fraction_gives_round_half_up_malicious_clients(num_clients, fraction, count):
  assert num_malicious(num_clients, fraction) == count
  ids = seed_malicious_ids(0, num_clients, fraction)
  assert len(ids) == len(set(ids)) == count
  assert ids == sorted(ids) and all(0 <= i < num_clients for i in ids)


def test_malicious_ids_are_a_pure_function_of_the_seed():
  assert seed_malicious_ids(3, 20, 0.25) == seed_malicious_ids(3, 20, 0.25)
  sets = {tuple(seed_malicious_ids(s, 20, 0.25)) for s in range(6)}
  assert len(sets) >= 5  # different seeds draw different sets (C(20, 5) = 15504 of them)
  # Vmappable over root keys (a sweep over seeds): equal to one seed at a time.
  keys = jnp.stack([jax.random.key(s) for s in range(4)])
  batched = np.asarray(jax.vmap(lambda k: malicious_ids(k, 20, 5))(keys))
  for s in range(4):
    assert batched[s].tolist() == seed_malicious_ids(s, 20, 0.25)
  mask = np.asarray(malicious_mask(jax.random.key(3), 20, 5))
  assert np.flatnonzero(mask).tolist() == seed_malicious_ids(3, 20, 0.25)


def uploads(num=4, dim=3):
  delta = {"w": jnp.arange(num * dim, dtype=jnp.float32).reshape(num, dim) + 1.0,
           "b": jnp.ones((num, 2, 2), jnp.float32)}
  return ClientOutput(delta=delta, num_examples=jnp.asarray([5.0, 6.0, 7.0, 8.0]),
                      metrics={"train_loss": jnp.zeros(num)})


ROOT = jax.random.key(11)
NUM_CLIENTS = 10


def cohort_with_attackers():
  """A cohort of 4 of 10 clients holding exactly the 2 malicious ids at slots 1 and 3."""
  bad = seed_malicious_ids(11, NUM_CLIENTS, 0.2)
  good = [i for i in range(NUM_CLIENTS) if i not in bad]
  ids = jnp.asarray([good[0], bad[0], good[1], bad[1]])
  return ids, np.asarray([False, True, False, True])


@pytest.mark.parametrize("kind,factor", [("sign_flip", -5.0), ("scaled", 5.0)])
def test_sign_flip_and_scaled_replace_only_the_malicious_uploads(kind, factor):
  ids, bad = cohort_with_attackers()
  up = uploads()
  corrupt = corrupt_uploads(kind, 5.0, 0.0, num_malicious(NUM_CLIENTS, 0.2), NUM_CLIENTS)
  out, attackers = corrupt(up, ids, ROOT, jax.random.key(0))
  assert int(attackers) == 2
  for name in ("w", "b"):
    expected = np.where(bad.reshape((-1,) + (1,) * (up.delta[name].ndim - 1)),
                        factor * np.asarray(up.delta[name]), np.asarray(up.delta[name]))
    np.testing.assert_array_equal(out.delta[name], expected)
  np.testing.assert_array_equal(out.num_examples, up.num_examples)  # weights untouched


def test_gaussian_uploads_noise_keyed_by_round_and_client():
  ids, bad = cohort_with_attackers()
  big = ClientOutput(delta={"w": jnp.ones((4, 20000))}, num_examples=jnp.ones(4), metrics={})
  corrupt = corrupt_uploads("gaussian", 1.0, 0.5, 2, NUM_CLIENTS)
  out, _ = corrupt(big, ids, ROOT, jax.random.key(1))
  w = np.asarray(out.delta["w"])
  np.testing.assert_array_equal(w[~bad], 1.0)
  for row in w[bad]:  # N(0, 0.5^2): mean 0 and std 0.5 within 5 standard errors
    assert abs(row.mean()) < 5 * 0.5 / np.sqrt(row.size)
    assert abs(row.std() - 0.5) < 5 * 0.5 / np.sqrt(2 * row.size)
  assert not np.allclose(w[1], w[3])  # per client
  again, _ = corrupt(big, ids, ROOT, jax.random.key(1))
  other_round, _ = corrupt(big, ids, ROOT, jax.random.key(2))
  np.testing.assert_array_equal(again.delta["w"], w)  # a pure function of the round key
  assert not np.allclose(other_round.delta["w"][1], w[1])
  # The client's id, not its slot, keys the noise: the same client elsewhere in the cohort.
  moved, _ = corrupt(big, ids[::-1], ROOT, jax.random.key(1))
  np.testing.assert_array_equal(moved.delta["w"][2], w[1])


def test_the_faults_hook_counts_attackers_in_the_cohort():
  config = smoke(data__num_clients=NUM_CLIENTS, attack__kind="sign_flip", attack__fraction=0.2,
                 attack__scale=2.0)
  faults = make_upload_faults(config, NUM_CLIENTS)
  ids, _ = cohort_with_attackers()
  root = jax.random.key(config.seed)
  bad = seed_malicious_ids(config.seed, NUM_CLIENTS, 0.2)
  out, metrics = faults(uploads(), ids, root, jax.random.key(0))
  assert int(metrics["attackers"]) == sum(int(i) in bad for i in np.asarray(ids))
  assert "survivors" not in metrics  # no dropout configured
  assert make_upload_faults(smoke(), 3) is None  # no attack, no dropout: no hook at all


def test_flip_labels_maps_y_to_c_minus_1_minus_y_for_the_malicious_clients_only():
  y = jnp.asarray([[0, 1, 9, 3], [2, 2, 5, 0], [7, 8, 9, 0]], jnp.int32)
  clients = ClientData(x=jnp.zeros((3, 4, 2)), y=y, num_examples=jnp.asarray([4, 3, 2]))
  out = flip_labels(clients, [0, 2], num_classes=10)
  np.testing.assert_array_equal(out.y, [[9, 8, 0, 6], [2, 2, 5, 0], [2, 1, 0, 9]])
  assert out.y.dtype == jnp.int32


def test_label_flip_poisons_the_built_clients_of_the_malicious_ids():
  honest = build_experiment(smoke(data__num_clients=5))
  poisoned = build_experiment(smoke(data__num_clients=5, attack__kind="label_flip",
                                    attack__fraction=0.4))
  bad = seed_malicious_ids(0, 5, 0.4)
  assert len(bad) == 2
  y, y_bad = np.asarray(honest.clients.y), np.asarray(poisoned.clients.y)
  for i in range(5):
    expected = 9 - y[i] if i in bad else y[i]  # digits: 10 classes
    np.testing.assert_array_equal(y_bad[i], expected)
  np.testing.assert_array_equal(poisoned.clients.x, honest.clients.x)


@pytest.mark.parametrize("overrides,message", [
    (dict(attack__kind="sign_flp"), r"config.attack.kind='sign_flp' is not one of"),
    (dict(attack__kind="sign_flip", attack__fraction=1.0),
     r"config.attack.fraction=1.0 must be in \[0, 1\)"),
    (dict(attack__kind="sign_flip", attack__fraction=0.1),
     r"config.attack.kind='sign_flip' with config.attack.fraction=0.1 of "
     r"config.data.num_clients=3 gives no malicious client"),
    (dict(attack__scale=-1.0), r"config.attack.scale=-1.0 must be >= 0"),
    (dict(attack__noise_std=-1.0), r"config.attack.noise_std=-1.0 must be >= 0"),
    (dict(attack__kind="scaled", attack__fraction=0.4, server__algorithm="centralized"),
     r"config.attack.kind='scaled': config.server.algorithm='centralized' takes no "
     r"model-poisoning attack"),
    (dict(attack__kind="gaussian", attack__fraction=0.4, server__algorithm="fedbpt",
          zo__estimator="cma_es", zo__num_directions=4),
     r"config.attack.kind='gaussian': config.server.algorithm='fedbpt' takes no"),
    (dict(server__algorithm="dfedsam", server__aggregator="krum", data__num_clients=5),
     r"config.server.aggregator='krum': config.server.algorithm='dfedsam' mixes neighbours "
     r"with one of \['weighted_mean', 'median', 'trimmed_mean'\]"),
])
def test_attack_fields_are_checked_at_load_time(overrides, message):
  with pytest.raises(ConfigError, match=message):
    validate_config(smoke(**overrides))


def test_label_flip_is_accepted_where_model_poisoning_is_not():
  validate_config(smoke(attack__kind="label_flip", attack__fraction=0.4,
                        server__algorithm="centralized"))


def test_a_vmapped_sweep_refuses_label_flip_over_seeds():
  configs = [smoke(seed=s, attack__kind="label_flip", attack__fraction=0.4) for s in (0, 1)]
  with pytest.raises(SweepMismatchError, match="label_flip"):
    check_members(configs)
  # Model poisoning is drawn in the program from each member's key: seeds may differ.
  assert check_members([smoke(seed=s, attack__kind="sign_flip", attack__fraction=0.4)
                        for s in (0, 1)]) == ["seed"]
