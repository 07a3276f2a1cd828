"""``experiments.instruction_table``'s runs (``instruction_runs``): every method's config
passes validation (no model is loaded) and every method is given the same training rows."""

import pytest

from experiments.instruction_runs import CLIENTS, METHODS, PER_CLIENT, config_for
from fedbbpt_jax.train import validate_config


@pytest.mark.parametrize("budget", [300, 450])
def test_every_method_validates_and_spends_the_same_training_rows(budget):
  rows = {}
  for method in METHODS:
    c = config_for("first_word_letter", 1, method, budget, 3)
    validate_config(c)
    assert (c.seed, c.data.task_seed, c.generator.projection_seed, c.task.demos) == (1, 1, 1, 3)
    if method == "fedbbpt":  # clients x 1 step x 2 SPSA candidates x batch
      rows[method] = c.train.rounds * CLIENTS * 2 * c.client.batch_size
      assert c.baselines.local_only
    else:  # points a round x every training example
      rows[method] = c.train.rounds * c.bo.batch * CLIENTS * PER_CLIENT
      assert c.bo.initial % c.bo.batch == 0 and c.bo.initial < c.train.rounds * c.bo.batch
  assert set(rows.values()) == {budget}, rows
