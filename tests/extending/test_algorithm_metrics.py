"""A user algorithm's own per-round metric reaches metrics.jsonl and summary.json.

The algorithm is registered here, from test code: FedBBPT whose ``client_update``
reports one more statistic in its upload (the examples the client holds) and whose
``server_update`` returns the cohort's largest and every member's value. Nothing under
``fedbbpt_jax/`` names these metrics: the records writer writes what the round returns.
"""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from configs.fmnist_effnet import get_config
from fedbbpt_jax.federated import ALGORITHMS, make_algorithm, register_algorithm
from fedbbpt_jax.train import run
from fedbbpt_jax.train.build import build_experiment
from tests.helpers.overrides import with_overrides
from tests.helpers.tiny_models import tiny

NAME = "fedbbpt_with_sizes"


def build(ctx):
  base = ALGORITHMS.get("fedbbpt").build(ctx)

  def client_update(received, data, key, hparams, round_idx):
    upload = base.client_update(received, data, key, hparams, round_idx)
    return upload.replace(metrics={**upload.metrics, "examples_held": data.num_examples})

  def server_update(state, uploads, ids, key):
    state, metrics = base.server_update(state, uploads, ids, key)
    held = uploads.metrics["examples_held"]
    return state, {**metrics, "largest_client_examples": jnp.max(held),
                   "cohort_examples": held}

  return make_algorithm(NAME, base.cohort_size, base.round_cost, init=base.init,
                        select=base.select, broadcast=base.broadcast,
                        client_update=client_update, server_update=server_update,
                        backend=base.backend)


@pytest.fixture
def algorithm():
  register_algorithm(NAME, build, ALGORITHMS.get("fedbbpt").check, applies_aggregator=True)
  yield NAME
  ALGORITHMS.unregister(NAME)


def test_a_user_algorithms_metric_is_written_to_every_row_and_the_summary(algorithm, tmp_path):
  config = with_overrides(tiny(get_config("smoke")), server__algorithm=algorithm,
                          server__cohort_size=2, train__rounds=3,
                          baselines__local_only=False, baselines__zero_shot=False)
  summary = run(config, str(tmp_path), log=lambda s: None)
  held = np.asarray(build_experiment(config).clients.num_examples)
  with open(os.path.join(tmp_path, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  assert len(rows) == 3
  for row in rows:
    assert len(row["cohort"]) == 2
    assert row["cohort_examples"] == held[row["cohort"]].tolist()
    assert row["largest_client_examples"] == int(held[row["cohort"]].max())
    assert isinstance(row["largest_client_examples"], int)
  assert summary["algorithm"] == NAME
  assert summary["final_largest_client_examples"] == rows[-1]["largest_client_examples"]
  assert summary["final_cohort_examples"] == rows[-1]["cohort_examples"]
  with open(os.path.join(tmp_path, "summary.json")) as f:
    assert json.load(f)["final_largest_client_examples"] == rows[-1]["largest_client_examples"]
