"""Honest counts: every algorithm x task family's query counters equal the real black-box traffic.

Each run wraps its black box in ``CountingBlackBox`` (a run-time callback on every
forward inside the compiled programs) and compares what really reached the model
with what the run recorded: the meter's training and evaluation examples, the
zero-shot and local-only baselines (once per family: they do not depend on the
algorithm), the setup queries (label mapping, verbalizers), and the physical calls
(one per client step and evaluation chunk).
"""

import math

import pytest

from configs import drug_minilm, fmnist_effnet, glue_roberta
from fedbbpt_jax.blackbox.counting import CountingBlackBox
from fedbbpt_jax.train import run
from tests.helpers.overrides import with_overrides
from tests.helpers.tiny_models import tiny

ROUNDS = 1


def _small(config, **overrides):
  """The family's smoke config on a tiny black box (the counts do not depend on the model;
  every program here has a counting callback, which keeps it out of the compile cache),
  evaluated once."""
  return with_overrides(config, train__rounds=ROUNDS, train__eval_every=ROUNDS, **overrides)


FEDBPT = dict(zo__estimator="cma_es", zo__num_directions=4, server__cohort_size=0)
CONFIGS = {
    "image": lambda alg: _small(tiny(fmnist_effnet.get_config("smoke")),
                                **(dict(FEDBPT, zo__sigma=0.5) if alg == "fedbpt" else {})),
    "text": lambda alg: _small(tiny(drug_minilm.get_config("smoke"))),
    "soft": lambda alg: _small(tiny(drug_minilm.get_config("soft_smoke")),
                               **(dict(FEDBPT, zo__sigma=1.0) if alg == "fedbpt" else {})),
}


def _glue(assets):
  tfds_dir, model_dir = assets
  return _small(glue_roberta.get_config("smoke"), data__tfds_dir=tfds_dir,
                blackbox__model_dir=model_dir)


def _steps_per_activation(algorithm, config, cohort):
  """Physical black-box calls one client activation makes (one per step, all candidates)."""
  k = config.client.local_steps
  return {"fedbbpt": k, "fedone": k, "centralized": cohort * k, "fedbpt": k + 1,
          "dfedsam": 2 * k if config.decentralized.rho else k}[algorithm]


def _chunks(n, config):
  """Evaluation calls over ``n`` rows: full chunks and the remainder."""
  return math.ceil(n / config.train.eval_batch_size)


CASES = [("image", a) for a in ("fedbbpt", "fedone", "centralized", "fedbpt", "dfedsam")]
CASES += [("text", a) for a in ("fedbbpt", "fedone", "centralized", "dfedsam")]
CASES += [("soft", a) for a in ("fedbbpt", "fedbpt")]
CASES += [("glue", a) for a in ("fedbbpt", "fedone", "centralized")]


@pytest.mark.parametrize("family,algorithm", CASES)
def test_counters_equal_the_real_black_box_traffic(family, algorithm, tmp_path, request):
  if family == "glue":
    config = _glue(request.getfixturevalue("glue_assets"))
  else:
    config = CONFIGS[family](algorithm)
  # The baselines (zero-shot, local-only) do not depend on the algorithm: they run once
  # per family (each counted program compiles anew: the counting callback keeps it out of
  # the compile cache).
  baselines = algorithm == "fedbbpt"
  with_overrides(config, server__algorithm=algorithm, baselines__zero_shot=baselines,
                 baselines__local_only=baselines)
  wrapped = []
  summary = run(config, str(tmp_path), log=lambda s: None,
                wrap_blackbox=lambda bb: wrapped.append(CountingBlackBox(bb)) or wrapped[-1])
  assert len(wrapped) == 1
  real = wrapped[0].counts()

  counters = summary["query_counters"]
  n_test, n_clients = summary["test_examples"], summary["num_clients"]
  cohort = summary["cohort_size"]
  if family == "image":  # the label mapping: one call per client on its first images
    setup_examples, setup_calls = n_clients * config.task.mapping_examples_per_client, n_clients
  elif family in ("text", "soft"):  # the verbalizers: one call
    setup_examples, setup_calls = len(summary["class_names"]), 1
  else:  # GLUE verbalizers are token ids: no call
    setup_examples, setup_calls = 0, 0
  dev = summary.get("dev_examples", 0)  # GLUE: the final prompt's dev score (not a query)
  train_examples = counters["bb_examples"] - setup_examples
  batch = config.client.batch_size
  expected_examples = (counters["bb_examples"] + counters["eval_bb_examples"] + dev
                       + (n_test + summary["local_only_black_box_queries"] + n_clients * n_test
                          if baselines else 0))
  # One evaluation, after the last round (decentralized: the mean model and every client's).
  own_models = n_clients if algorithm == "dfedsam" else 0
  assert counters["eval_bb_examples"] == (1 + own_models) * n_test
  assert real["examples"] == expected_examples

  activations = ROUNDS * (1 if algorithm in ("fedone", "centralized") else cohort)
  if algorithm == "dfedsam":
    assert config.decentralized.rho > 0  # the SAM step: two estimates per local step
  assert counters["client_activations"] == activations
  assert counters["bb_calls"] - setup_calls == train_examples // batch == counters["candidates"]
  expected_calls = (setup_calls + activations * _steps_per_activation(algorithm, config, cohort)
                    + (1 + own_models) * _chunks(n_test, config) + _chunks(dev, config)
                    + ((1 + n_clients) * _chunks(n_test, config)  # zero-shot, local-only
                       + ROUNDS * n_clients * config.client.local_steps if baselines else 0))
  assert real["calls"] == expected_calls
