"""Smoke experiments of the centralized and FedBPT algorithms: records and exact query counts."""

import json
import os

import pytest

from configs.fmnist_effnet import get_config
from fedbbpt_jax.train import ConfigError, run, validate_config

MAPPING_QUERIES = 3 * 10  # 10 unprompted images per client for the label mapping
# Per round, smoke config: 3 clients, 3 local steps, batch 8, zo.num_directions 2.
ROUND_EXAMPLES = {
    "centralized": 1 * (3 * 3) * 4 * 8,  # one pooled client, 3 x 3 steps of SPSA-GC's 4
    "fedbpt": 3 * (3 * 2 + 1) * 8,       # 3 clients x (3 CMA-ES generations of 2 + f_c)
}


def smoke(algorithm, estimator):
  c = get_config("smoke")
  c.server.algorithm = algorithm
  c.zo.estimator = estimator
  c.train.rounds = 2
  c.baselines.local_only = False
  return c


@pytest.mark.parametrize("algorithm,estimator", [("centralized", "spsa_gc"),
                                                 ("fedbpt", "cma_es")])
def test_smoke_run_finishes_with_exact_query_counts(algorithm, estimator, tmp_path):
  workdir = str(tmp_path)
  summary = run(smoke(algorithm, estimator), workdir, log=lambda s: None)
  with open(os.path.join(workdir, "summary.json")) as f:
    assert json.load(f)["algorithm"] == algorithm
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  per_round = ROUND_EXAMPLES[algorithm]
  assert [r["bb_examples"] for r in rows] == [MAPPING_QUERIES + per_round * k for k in (1, 2)]
  assert summary["black_box_queries"] == rows[-1]["bb_examples"]
  assert 0.0 <= summary["final_accuracy"] <= 1.0


def test_algorithm_choices_are_validated():
  with pytest.raises(ConfigError, match="server.algorithm"):
    validate_config(smoke("fedprox", "spsa_gc"))
  with pytest.raises(ConfigError, match="cma_es"):
    validate_config(smoke("fedbpt", "spsa_gc"))
  c = smoke("fedbbpt", "open_es")
  c.zo.num_directions = 3
  with pytest.raises(ConfigError, match="even"):
    validate_config(c)
