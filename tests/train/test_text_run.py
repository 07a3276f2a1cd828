"""End-to-end text runs (drug reviews, MiniLM black box, BDPL): learning, records, config."""

import json
import os

import numpy as np
import pytest

from configs.drug_minilm import get_config
from fedbbpt_jax.train import ConfigError, validate_config
from fedbbpt_jax.train.vmapped_sweep import run_vmapped
from tests.helpers.overrides import with_overrides
from tests.helpers.perturbation import learning_seeds, perturbed, t_statistic


def smoke(**overrides):
  return with_overrides(get_config("smoke"), **overrides)


# The learning run: the smoke task trained long enough to learn (8 rounds of 4 steps, 3,072
# training queries a seed) and scored on the whole test split (193 reviews, 12 classes).
LEARNING = dict(train__rounds=8, train__eval_every=8, client__local_steps=4,
                data__test_examples=0, train__eval_batch_size=200)
SEEDS = learning_seeds(range(6))


@pytest.fixture(scope="module")
def text_runs(tmp_path_factory):
  """The learning run for six seeds as one vmapped sweep (members equal separate runs)."""
  root = tmp_path_factory.mktemp("text")
  configs = [perturbed(smoke(seed=s, **LEARNING)) for s in SEEDS]
  workdirs = [str(root / f"seed{s}") for s in SEEDS]
  return workdirs, configs, run_vmapped(configs, workdirs, log=lambda s: None)


@pytest.mark.slow
@pytest.mark.learning
def test_the_mean_gain_over_zero_shot_is_several_standard_errors(text_runs):
  """Noise: the seed-to-seed spread of the gain (training directions, prompt samples and
  minibatches, and the 193-review test set's own sampling, ~3.6 points of accuracy per
  run). Measured on seeds 0-5 (+7.0 ± 2.3 points, t = 7.3) and, perturbed, on seeds
  1000-1005 (+7.5 ± 2.7, t = 6.8): the expected t is about 7, so t > 3 fails only if
  the effect halves; the test loss falls with t = 15 and 8.9, asserted at t > 4."""
  _, _, summaries = text_runs
  gains = {m: [s[f"final_{m}"] - s[f"zero_shot_{m}"] for s in summaries]
           for m in ("accuracy", "loss", "macro_f1")}
  assert t_statistic(gains["accuracy"]) > 3, gains
  assert t_statistic(gains["loss"]) < -4, gains
  assert np.mean(gains["macro_f1"]) > 0, gains  # measured t = 5.6 and 3.0


@pytest.mark.slow
def test_the_learning_run_reports_text_metrics(text_runs):
  workdirs, configs, summaries = text_runs
  workdir, config, summary = workdirs[0], configs[0], summaries[0]
  assert summary["test_examples"] == 193
  assert len(summary["final_per_class_recall"]) == 12
  assert len(summary["zero_shot_per_class_recall"]) == 12
  assert summary["collapsed_to_majority"] is False
  assert len(summary["learned_prompt"].split()) == config.prompt.length
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  evaluated = [r["round"] for r in rows if "test_macro_f1" in r and "collapsed_to_majority" in r]
  assert evaluated == [8]
  # 12 verbalizer embeddings once, then clients x steps x I prompts x batch per round.
  c = config
  per_round = c.data.num_clients * c.client.local_steps * c.zo.num_directions * c.client.batch_size
  assert [r["bb_examples"] for r in rows] == [12 + per_round * k
                                              for k in range(1, c.train.rounds + 1)]
  assert rows[-1]["bb_calls"] == 1 + c.train.rounds * c.data.num_clients * c.client.local_steps \
      * c.zo.num_directions


@pytest.mark.parametrize("field, value, message", [
    ("zo__estimator", "spsa", "zo.estimator"),
    ("server__algorithm", "fedprox", "server.algorithm"),
    ("prompt__length", 30, "prompt.length"),
    ("task__verbalizer_template", "no slot", "task.verbalizer_template"),
    ("data__task", "topic", "data.task"),
])
def test_text_config_errors_name_the_field(field, value, message):
  with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
    validate_config(smoke(**{field: value}))


def test_text_configs_validate():
  for mode in ("", "sentiment", "smoke"):
    validate_config(get_config(mode))
