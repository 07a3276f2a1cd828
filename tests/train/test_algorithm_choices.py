"""Algorithm choices are validated at load time (runs of every algorithm: test_query_counts)."""

import pytest

from configs.fmnist_effnet import get_config
from fedbbpt_jax.train import ConfigError, validate_config


def smoke(algorithm, estimator):
  c = get_config("smoke")
  c.server.algorithm = algorithm
  c.zo.estimator = estimator
  c.train.rounds = 2
  c.baselines.local_only = False
  return c


def test_algorithm_choices_are_validated():
  with pytest.raises(ConfigError, match="server.algorithm"):
    validate_config(smoke("fedprox", "spsa_gc"))
  with pytest.raises(ConfigError, match="cma_es"):
    validate_config(smoke("fedbpt", "spsa_gc"))
  c = smoke("fedbbpt", "open_es")
  c.zo.num_directions = 3
  with pytest.raises(ConfigError, match="even"):
    validate_config(c)
