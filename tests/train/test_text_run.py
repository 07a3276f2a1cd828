"""End-to-end text runs (drug reviews, MiniLM black box, BDPL): learning, records, config."""

import json
import os

import pytest

from configs.drug_minilm import get_config
from fedbbpt_jax.train import ConfigError, run, validate_config
from tests.helpers.overrides import with_overrides


def smoke(**overrides):
  return with_overrides(get_config("smoke"), **overrides)


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("text"))
  config = smoke()
  return workdir, config, run(config, workdir, log=lambda s: None)


def test_smoke_run_beats_zero_shot_and_reports_text_metrics(text_run):
  workdir, config, summary = text_run
  assert summary["final_accuracy"] > summary["zero_shot_accuracy"], summary
  assert summary["final_macro_f1"] > summary["zero_shot_macro_f1"], summary
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
