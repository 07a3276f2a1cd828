"""Settings the run would ignore are refused at load time, by one rule.

A field counts as set when it differs from its default, and its default is the value the
shared block of ``configs/common.py`` gives it; the library declares the same defaults
with each reader (``reads=`` of a registry entry), pinned here to ``configs/common.py``.
Which algorithms apply which aggregator is computed from the registries and must agree
with what validation accepts, so a message's suggestion is never refused afterwards.
"""

import ml_collections
import pytest

from configs import common, fmnist_effnet
from fedbbpt_jax.core import ConfigError, get_field, is_set
from fedbbpt_jax.data import PARTITION_READS
from fedbbpt_jax.federated import (AGGREGATORS, ALGORITHMS, TOPOLOGIES, algorithms_applying,
                                   register_configured, server_algorithm_names)
from fedbbpt_jax.federated.simulated_faults.faults import attack_reads
from fedbbpt_jax.federated.aggregation.robust_aggregators import make_trimmed_mean
from fedbbpt_jax.train import validate_config
from tests.helpers.overrides import with_overrides

# What an algorithm needs to validate at all (fedbpt runs CMA-ES); 5 clients for Krum.
NEEDS = {"fedbpt": dict(zo__estimator="cma_es", zo__num_directions=4),
         "fed_bo": dict(server__cohort_size=0), "centralized_bo": dict(server__cohort_size=0)}


def smoke(**overrides):
  return with_overrides(fmnist_effnet.get_config("smoke"), **overrides)


def declared_reads():
  """``(reader, field, default)`` of every declared read, over all the readers."""
  tables = [ALGORITHMS.all_reads(), AGGREGATORS.all_reads(), TOPOLOGIES.all_reads(),
            attack_reads(), PARTITION_READS]
  return [(name, field, default) for table in tables for name, fields in table.items()
          for field, default in fields.items()]


def leaves(config, prefix):
  return {prefix + k for k, v in config.items() if not isinstance(v, ml_collections.ConfigDict)}


def test_the_declared_defaults_are_those_of_configs_common():
  blocks = ml_collections.ConfigDict({
      "server": common.server(), "decentralized": common.decentralized(),
      "attack": common.attack(), "data": common.partition(num_clients=1), "bo": common.bo()})
  for name, field, default in declared_reads():
    value = get_field(blocks, field)
    assert (value, type(value)) == (default, type(default)), (name, field)
  # Every field of the gated blocks has a reader (the choices themselves excepted).
  declared = {field for _, field, _ in declared_reads()}
  assert leaves(common.dp(), "server.dp.") | leaves(common.robust(), "server.robust.") \
      | leaves(common.decentralized(), "decentralized.") <= declared
  assert {"server.pooled_clock", "attack.fraction", "attack.scale", "attack.noise_std",
          "data.dirichlet_alpha", "data.shards_per_client"} <= declared


def test_which_algorithms_apply_an_aggregator_is_what_validation_accepts():
  pairs = 0
  for aggregator in AGGREGATORS.names():
    accepted = []
    for algorithm in server_algorithm_names():
      config = smoke(data__num_clients=5, server__algorithm=algorithm,
                     server__aggregator=aggregator, **NEEDS.get(algorithm, {}))
      try:
        validate_config(config)
        accepted.append(algorithm)
      except ConfigError as e:
        assert "config.server.aggregator=" in str(e), str(e)  # refused for the pair only
      pairs += 1
    assert tuple(accepted) == algorithms_applying(aggregator), aggregator
  assert pairs == len(AGGREGATORS) * len(server_algorithm_names()) == 49
  assert algorithms_applying("dp_gaussian") == ("fedbbpt",)
  assert algorithms_applying("median") == ("dfedsam", "fed_bo", "fedbbpt")


def test_dp_with_an_algorithm_that_ignores_aggregators_says_what_to_set_and_that_works():
  config = smoke(server__algorithm="centralized", server__dp__noise_multiplier=2.0)
  with pytest.raises(ConfigError) as e:
    validate_config(config)
  assert str(e.value) == (
      "config.server.dp.noise_multiplier=2.0 would be ignored: it is read only when "
      "config.server.aggregator='dp_gaussian' (this run: 'weighted_mean'); set "
      "config.server.aggregator='dp_gaussian' and config.server.algorithm='fedbbpt' to apply "
      "it, or leave it at its default 1.0")
  with pytest.raises(ConfigError) as e:
    validate_config(smoke(server__algorithm="centralized", server__aggregator="dp_gaussian"))
  assert str(e.value) == (
      "config.server.aggregator='dp_gaussian' would be ignored: config.server.algorithm="
      "'centralized' does not combine uploads with server.aggregator; set "
      "config.server.algorithm='fedbbpt' to apply 'dp_gaussian', or leave it at its default "
      "'weighted_mean'")
  validate_config(with_overrides(config, server__aggregator="dp_gaussian",
                                 server__algorithm="fedbbpt"))  # the suggestion runs


@pytest.mark.parametrize("overrides", [
    dict(server__aggregator="dp_gaussian", server__dp__noise_multiplier=2.0,
         server__dp__target_epsilon=30.0),
    dict(server__aggregator="trimmed_mean", server__robust__trim_fraction=0.2),
    dict(data__num_clients=5, server__aggregator="multi_krum", server__robust__num_byzantine=0,
         server__robust__multi_krum_m=2),
    dict(server__algorithm="centralized", server__pooled_clock="global"),
    dict(server__algorithm="dfedsam", decentralized__topology="k_regular",
         decentralized__degree=2, decentralized__topology_seed=3, decentralized__rho=0.1),
    dict(attack__kind="gaussian", attack__fraction=0.34, attack__noise_std=2.0),
    dict(data__partition="shards", data__shards_per_client=3),
], ids=["dp", "trimmed_mean", "multi_krum", "pooled_clock", "k_regular", "gaussian_attack",
        "shards"])
def test_a_set_field_is_accepted_where_the_choice_reads_it(overrides):
  validate_config(smoke(**overrides))


def test_values_at_their_default_are_never_refused_whatever_the_number_type():
  loose = ml_collections.ConfigDict(smoke().to_dict(), type_safe=False)
  validate_config(with_overrides(loose, server__dp__noise_multiplier=1, attack__scale=1,
                                 decentralized__edge_probability=0.5))
  assert (is_set(1, 1.0), is_set(0.0, 0), is_set(True, 1), is_set(2.0, 1.0)) == \
      (False, False, True, True)


def test_a_user_aggregator_declares_the_fields_it_reads():
  register_configured("my_trimmed_mean", make_trimmed_mean,
                      reads={"server.robust.trim_fraction": 0.1})
  try:
    validate_config(smoke(server__aggregator="my_trimmed_mean",
                          server__robust__trim_fraction=0.3))
    with pytest.raises(ConfigError) as e:
      validate_config(smoke(server__robust__trim_fraction=0.3))
    assert str(e.value) == (
        "config.server.robust.trim_fraction=0.3 would be ignored: it is read only when "
        "config.server.aggregator is one of ['my_trimmed_mean', 'trimmed_mean'] (this run: "
        "'weighted_mean'); set config.server.aggregator to one of ['my_trimmed_mean', "
        "'trimmed_mean'] to apply it, or leave it at its default 0.1")
  finally:
    AGGREGATORS.unregister("my_trimmed_mean")
  assert "my_trimmed_mean" not in AGGREGATORS.all_reads()
