"""Text track beyond BDPL + Fed-BBPT: BBT soft prompt runs, centralized and FedBPT, config
checks."""

import json
import os

import numpy as np
import pytest

from configs.drug_minilm import get_config
from fedbbpt_jax.train import ConfigError, run, validate_config
from tests.helpers.overrides import with_overrides

VERBALIZER_QUERIES = 12  # the 12 class texts, embedded once (one call)


def config(mode, **overrides):
  return with_overrides(get_config(mode), **overrides)


def metrics_rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_soft_smoke_run_records_and_counts(tmp_path):
  c = config("soft_smoke")
  summary = run(c, str(tmp_path), log=lambda s: None)
  # At z = 0 the prompt is the base text: the zero-shot loss of the frozen encoder, a
  # forward pass (float32 rounding only). Three rounds of 576 queries do not move the
  # test accuracy measurably, so this mechanics test asserts no learning: the text
  # track's learning test is tests/train/test_text_run.py.
  assert summary["zero_shot_loss"] == pytest.approx(1.6220, abs=1e-3)
  assert np.isfinite(summary["final_loss"]) and summary["final_loss"] != summary["zero_shot_loss"]
  assert summary["soft_prompt_dim"] == c.prompt.dim
  assert summary["soft_prompt_z_norm"] > 0
  rows = metrics_rows(str(tmp_path))
  # Fed-BBPT, every client: 3 clients x 2 steps x 2 antithetic pairs (4 candidates) x batch 8.
  per_round_calls = 3 * 2 * 4
  assert [r["bb_examples"] for r in rows] == [VERBALIZER_QUERIES + per_round_calls * 8 * k
                                              for k in (1, 2, 3)]
  assert rows[-1]["bb_calls"] == 1 + 3 * per_round_calls


@pytest.mark.parametrize("mode, field, value, message", [
    ("smoke", "server__algorithm", "fedbpt", "prompt.kind"),
    ("soft_smoke", "server__algorithm", "fedbpt", "zo.estimator='cma_es'"),
    ("soft_smoke", "zo__estimator", "bdpl", "zo.estimator"),
    ("soft_smoke", "client__optimizer", "lamb", "client.optimizer"),
    ("soft_smoke", "prompt__dim", 0, "prompt.dim"),
    ("soft_smoke", "prompt__init_text", " ", "prompt.init_text"),
    ("soft_smoke", "prompt__projection_alpha", 0.0, "prompt.projection_alpha"),
    ("soft_smoke", "prompt__projection_sigma", -1.0, "prompt.projection_sigma"),
    ("soft_smoke", "prompt__projection_seed", -1, "prompt.projection_seed"),
    ("soft_smoke", "zo__sigma", 0.0, "zo.sigma"),
    ("soft_smoke", "prompt__kind", "hard", "prompt.kind"),
])
def test_soft_and_algorithm_config_errors_name_the_field(mode, field, value, message):
  with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("'", "'")):
    validate_config(config(mode, **{field: value}))


def test_soft_prompt_refuses_a_remote_black_box_and_fedbpt_a_single_client():
  c = config("soft_smoke")
  c.blackbox.url = "http://127.0.0.1:8000"
  with pytest.raises(ConfigError, match=r"blackbox\.url.*tokens, not input embeddings"):
    validate_config(c)
  c = config("soft_smoke", server__algorithm="fedbpt", zo__estimator="cma_es",
             server__cohort_size=1)
  with pytest.raises(ConfigError, match=r"cohort of >= 2"):
    validate_config(c)


def test_soft_configs_validate():
  for mode in ("soft", "soft_smoke"):
    validate_config(get_config(mode))
  validate_config(config("soft", server__algorithm="fedbpt", zo__estimator="cma_es",
                         server__cohort_size=0))
  validate_config(config("smoke", server__algorithm="centralized"))
