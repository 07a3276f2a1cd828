"""End-to-end text runs (drug reviews, MiniLM black box, BDPL): learning, records, config."""

import json
import os

import numpy as np
import pytest

from configs.drug_minilm import get_config
from fedbbpt_jax.train import ConfigError, validate_config
from fedbbpt_jax.train.vmapped_sweep import run_vmapped
from tests.helpers.overrides import with_overrides


def smoke(**overrides):
  return with_overrides(get_config("smoke"), **overrides)


SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def text_runs(tmp_path_factory):
  """The smoke run for three seeds as one vmapped sweep (members equal separate runs)."""
  root = tmp_path_factory.mktemp("text")
  configs = [smoke(seed=s) for s in SEEDS]
  workdirs = [str(root / f"seed{s}") for s in SEEDS]
  return workdirs, configs, run_vmapped(configs, workdirs, log=lambda s: None)


def test_the_mean_gain_over_zero_shot_across_seeds_exceeds_its_standard_error(text_runs):
  _, _, summaries = text_runs
  for metric in ("accuracy", "macro_f1"):
    gains = np.asarray([s[f"final_{metric}"] - s[f"zero_shot_{metric}"] for s in summaries])
    standard_error = gains.std(ddof=1) / np.sqrt(len(gains))
    assert gains.mean() > standard_error and gains.min() > 0, (metric, gains)


def test_smoke_run_reports_text_metrics(text_runs):
  workdirs, configs, summaries = text_runs
  workdir, config, summary = workdirs[0], configs[0], summaries[0]
  assert len(summary["final_per_class_recall"]) == 12
  assert len(summary["zero_shot_per_class_recall"]) == 12
  assert summary["collapsed_to_majority"] is False
  assert len(summary["learned_prompt"].split()) == config.prompt.length
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  assert all("test_macro_f1" in r and "collapsed_to_majority" in r for r in rows)
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
