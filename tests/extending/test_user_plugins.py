"""Extending the library from user code only: a dataset, an aggregator and an algorithm.

These are the worked examples of README's "Extending" section: nothing under
``fedbbpt_jax/`` is edited; each plug-in is registered here and selected by config.
The dataset runs on the real EfficientNet-Lite0 (its ImageNet logits must tell faces
apart); the aggregator and the algorithm check mechanics (what the server applies, what
the meter counts), on the tiny test classifier (``tests/helpers/tiny_models.py``).
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.fmnist_effnet import get_config
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.data import COOP_BENCHMARKS, DATASETS, register_image_arrays
from fedbbpt_jax.federated import (AGGREGATORS, ALGORITHMS, Algorithm, AlgorithmContext,
                                   RoundCost, make_algorithm, register_algorithm)
from fedbbpt_jax.federated.algorithms.fedbbpt import cohort_selector
from fedbbpt_jax.federated.algorithms.server import ServerState, client_keys, round_keys
from fedbbpt_jax.train import run, validate_config
from fedbbpt_jax.train.build import build_experiment
from tests.helpers.overrides import with_overrides
from tests.helpers.tiny_models import tiny


# --- a dataset: scikit-image's LFW subset, faces (1) vs non-faces (0) ---------------------

@pytest.fixture
def lfw_faces():
  from skimage.data import lfw_subset  # 200 grayscale 25x25 crops: 100 faces, then 100 not
  images = np.rint(lfw_subset() * 255).astype(np.uint8)
  labels = np.repeat([1, 0], 100)
  order = np.random.default_rng(0).permutation(200)
  train, test = order[:140], order[140:]
  register_image_arrays("lfw_faces", train=(images[train], labels[train]),
                        test=(images[test], labels[test]))
  yield "lfw_faces"
  DATASETS.unregister("lfw_faces")


def test_a_dataset_registered_from_user_code_runs_end_to_end(lfw_faces, tmp_path):
  config = with_overrides(get_config("smoke"), data__name=lfw_faces, data__test_examples=0,
                          train__rounds=2, baselines__local_only=False, task__image_size=24,
                          task__sources_per_label=10)
  validate_config(config)
  summary = run(config, str(tmp_path), log=lambda s: None)
  assert summary["test_examples"] == 60 and summary["test_split"].startswith("lfw_faces test")
  histograms = np.asarray(summary["label_histograms"])
  assert histograms.shape == (3, 2) and histograms.sum() == 140  # 3 clients, 2 classes
  assert len(summary["final_per_class_recall"]) == 2
  # The frequency label mapping reads faces out of ImageNet logits well above chance (50%).
  assert summary["zero_shot_accuracy"] > 0.6, summary["zero_shot_accuracy"]
  assert np.isfinite(summary["final_loss"])


def test_an_unregistered_dataset_is_refused_naming_the_registered_ones():
  registered = ["client_folders", *(f"coop:{name}" for name in COOP_BENCHMARKS), "digits",
                "fashion_mnist"]
  with pytest.raises(ConfigError, match=re.escape(f"config.data.name='lfw_faces' is not one of "
                                                  f"{registered}")):
    validate_config(with_overrides(get_config("smoke"), data__name="lfw_faces"))


def test_bad_arrays_are_refused_when_registered():
  with pytest.raises(ValueError, match="uint8"):
    register_image_arrays("floats", train=(np.zeros((4, 8, 8)), np.zeros(4, int)),
                          test=(np.zeros((2, 8, 8)), np.zeros(2, int)))
  assert "floats" not in DATASETS


# --- an aggregator: the coordinate-wise median of the deltas -----------------------------

@pytest.fixture
def median_aggregator():
  def coordinate_median(deltas, weights, key):
    del weights, key
    return jax.tree.map(lambda d: jnp.median(d, axis=0), deltas)

  AGGREGATORS.register("coordinate_median", coordinate_median)
  yield "coordinate_median"
  AGGREGATORS.unregister("coordinate_median")


def test_an_aggregator_registered_from_user_code_is_what_the_server_applies(median_aggregator):
  config = with_overrides(tiny(get_config("smoke")), server__aggregator=median_aggregator)
  validate_config(config)
  exp = build_experiment(config)
  alg = exp.algorithm
  state = alg.init(exp.init_params)
  new_state, _ = jax.jit(alg.apply)(state, exp.clients, exp.root_key, exp.hparams)
  # The same round by hand, client by client: node-local updates, then the median.
  _, k_clients = round_keys(exp.root_key, state.round)
  keys = client_keys(k_clients, jnp.arange(exp.num_clients))
  client_update = jax.jit(alg.client_update)   # one client per call, compiled once
  deltas = [client_update(alg.broadcast(state), jax.tree.map(lambda a, i=i: a[i], exp.clients),
                          keys[i], exp.hparams, state.round).delta["pattern"]
            for i in range(exp.num_clients)]
  expected = state.params["pattern"] + np.median(np.stack(deltas), axis=0)
  # (one client at a time vs the vmapped cohort: float rounding of the black box only)
  np.testing.assert_allclose(np.asarray(new_state.params["pattern"]), expected, atol=2e-5)
  mean = state.params["pattern"] + np.mean(np.stack(deltas), axis=0)
  assert np.abs(expected - mean).max() > 100 * 2e-5  # the median is not the mean here


# --- an algorithm: adopt the update of the client with the most examples ------------------

def build_largest_client(ctx: AlgorithmContext) -> Algorithm:
  """Each round, the cohort trains; the server adopts the largest client's result."""
  cost = RoundCost(ctx.cohort_size, ctx.local_steps * ctx.estimator.num_candidates,
                   ctx.batch_size)

  def init(params):
    return ServerState(params=params, opt_state=(), round=jnp.asarray(0, jnp.int32))

  def server_update(state, uploads, ids, key):
    del key
    best = jnp.argmax(uploads.num_examples)
    params = jax.tree.map(lambda p, d: p + d[best], state.params, uploads.delta)
    metrics = {"train_loss": uploads.metrics["train_loss"][best], "cohort": ids}
    return ServerState(params=params, opt_state=(), round=state.round + 1), metrics

  return make_algorithm("largest_client", ctx.cohort_size, cost, init=init,
                        select=cohort_selector(ctx.num_clients, ctx.cohort_size),
                        broadcast=lambda state: state.params, client_update=ctx.local_update(),
                        server_update=server_update, backend=ctx.backend)


def check_largest_client(config):
  """What the algorithm needs of the config: a cohort, to pick from."""
  if config.server.cohort_size == 1:
    raise ConfigError("config.server.cohort_size=1: largest_client picks among several clients")


@pytest.fixture
def largest_client():
  register_algorithm("largest_client", build_largest_client, check_largest_client)
  yield "largest_client"
  ALGORITHMS.unregister("largest_client")


def test_an_algorithm_registered_from_user_code_runs_end_to_end(largest_client, tmp_path):
  config = with_overrides(tiny(get_config("smoke")), server__algorithm=largest_client,
                          train__rounds=2, baselines__local_only=False)
  validate_config(config)
  summary = run(config, str(tmp_path), log=lambda s: None)
  assert summary["algorithm"] == "largest_client"
  # Its declared cost is what the meter counted: 3 clients x 3 steps x 4 candidates x 8.
  assert summary["black_box_queries"] == 3 * 10 + 2 * (3 * 3 * 4 * 8)
  assert 0.0 <= summary["final_accuracy"] <= 1.0


def test_a_registered_algorithm_checks_its_config(largest_client):
  with pytest.raises(ConfigError, match="largest_client picks among several"):
    validate_config(with_overrides(get_config("smoke"), server__algorithm=largest_client,
                                   server__cohort_size=1))


def test_an_unknown_algorithm_lists_the_registered_ones():
  with pytest.raises(ConfigError, match=r"config.server.algorithm='largest_client' is not one "
                                        r"of \['centralized', 'centralized_bo', 'dfedsam', "
                                        r"'fed_bo', 'fedbbpt', 'fedbpt', 'fedone'\]"):
    validate_config(with_overrides(get_config("smoke"), server__algorithm="largest_client"))
