"""Builds everything an image experiment needs from its config (data to algorithms)."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from fedbbpt_jax import data as data_lib
from fedbbpt_jax.blackbox import BlackBox
from fedbbpt_jax.blackbox.factory import make_blackbox
from fedbbpt_jax.federated import (ClientData, FederatedAlgorithm, make_client_optimizer,
                                   make_local_only, make_local_update)
from fedbbpt_jax.prompts import make_prompt
from fedbbpt_jax.tasks import (SEMANTIC_FASHION_MNIST, VisualReprogramming, fixed_mapping,
                               frequency_mapping, prediction_counts)
from fedbbpt_jax.train.algorithms import RoundCost, build_algorithm
from fedbbpt_jax.train.config_check import ConfigError
from fedbbpt_jax.zo import HParams, make_estimator

TEST_SUBSET_SEED = 0


@dataclasses.dataclass
class Experiment:
  """An experiment's parts; ``algorithm`` is ``config.server.algorithm``, ``local_only`` a baseline."""

  config: ml_collections.ConfigDict
  task: VisualReprogramming
  clients: ClientData
  test_x: np.ndarray
  test_y: np.ndarray
  hparams: HParams
  init_params: Any
  algorithm: FederatedAlgorithm
  local_only: FederatedAlgorithm
  root_key: jax.Array
  label_histograms: np.ndarray
  num_candidates: int
  cohort_size: int
  mapping_queries: int
  round_cost: RoundCost | None = None  # exact black-box work of one round of ``algorithm``

  @property
  def num_clients(self) -> int:
    return int(self.clients.num_examples.shape[0])

  def train_examples_per_round(self, cohort_size: int | None = None) -> int:
    """Black-box examples one round costs (candidates x batch x steps x clients).

    Without ``cohort_size``: one round of ``algorithm`` (its ``round_cost``); with it:
    that many clients running the local update (e.g. the local-only baseline).
    """
    if cohort_size is None and self.round_cost is not None:
      return self.round_cost.bb_examples
    c = self.config.client
    size = self.cohort_size if cohort_size is None else cohort_size
    return size * c.local_steps * self.num_candidates * c.batch_size


def load_dataset(cfg: ml_collections.ConfigDict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Loads the configured dataset as uint8 images and int labels."""
  if cfg.name == "fashion_mnist":
    return data_lib.load_fashion_mnist(source_dir=cfg.source_dir, data_dir=cfg.tfds_dir or None)
  if cfg.name == "digits":
    return data_lib.load_digits_dataset()
  raise ConfigError(f"config.data.name={cfg.name!r} is not one of ['digits', 'fashion_mnist']")


def partition_clients(train_y: np.ndarray, cfg: ml_collections.ConfigDict) -> list[np.ndarray]:
  """Client index sets: the configured partition, optionally capped per client."""
  parts = data_lib.make_partition(cfg.partition, train_y, cfg.num_clients, cfg.partition_seed,
                                  alpha=cfg.dirichlet_alpha,
                                  shards_per_client=cfg.shards_per_client)
  if cfg.examples_per_client:
    rng = np.random.default_rng(cfg.partition_seed + 1)
    parts = [np.sort(rng.choice(p, size=min(len(p), cfg.examples_per_client), replace=False))
             for p in parts]
  return parts


def build_label_map(blackbox: BlackBox, canvas_fn, clients: ClientData, num_classes: int,
                    cfg: ml_collections.ConfigDict, dataset: str) -> tuple[np.ndarray, int]:
  """Label mapping and the black-box examples it cost.

  ``frequency``: every client counts unprompted predictions on its first
  ``mapping_examples_per_client`` images; the server sums the counts.
  """
  if cfg.label_mapping == "fixed":
    if dataset != "fashion_mnist":
      raise ConfigError("config.task.label_mapping='fixed' has a list only for fashion_mnist")
    return fixed_mapping(SEMANTIC_FASHION_MNIST, blackbox.output_size), 0
  m = cfg.mapping_examples_per_client
  predict = jax.jit(lambda x: blackbox(canvas_fn(x)))
  counts = np.zeros((blackbox.output_size, num_classes))
  queries = 0
  for i in range(clients.num_examples.shape[0]):
    n = min(m, int(clients.num_examples[i]))
    logits = np.asarray(predict(jnp.asarray(clients.x[i, :n])))
    counts += prediction_counts(logits, np.asarray(clients.y[i, :n]), num_classes)
    queries += n
  return frequency_mapping(counts, cfg.sources_per_label), queries


def cached_label_map(path: str | None, compute) -> tuple[np.ndarray, int]:
  """The label map and its query cost: read from ``path`` if it holds one, else computed.

  A computed map is written to ``path``, so a resumed run reuses it instead of
  querying the black box again (against a paid API the mapping costs queries, and
  the restored query meter would not count them a second time).
  """
  if path and os.path.exists(path):
    with np.load(path) as f:
      return f["label_map"], int(f["mapping_queries"])
  label_map, queries = compute()
  if path:
    write_label_map(path, label_map, queries)
  return label_map, queries


def write_label_map(path: str, label_map: np.ndarray, mapping_queries: int) -> None:
  """Writes ``label_map.npz`` atomically (a crash never leaves half a file)."""
  tmp = path + ".tmp.npz"
  np.savez(tmp, label_map=np.asarray(label_map), mapping_queries=np.int64(mapping_queries))
  os.replace(tmp, path)


def build_experiment(config: ml_collections.ConfigDict,
                     label_map_path: str | None = None) -> Experiment:
  """Loads data, partitions it, builds the black box, task, estimator and algorithms.

  ``label_map_path`` (image tasks; e.g. ``WORKDIR/label_map.npz``): where the label
  mapping is cached across resumes (see ``cached_label_map``).
  """
  if config.task.get("family", "image") == "text":
    from fedbbpt_jax.train.build_text import build_text_experiment  # pylint: disable=g-import-not-at-top
    return build_text_experiment(config)
  if config.task.get("family", "image") == "glue":
    from fedbbpt_jax.train.build_glue import build_glue_experiment  # pylint: disable=g-import-not-at-top
    return build_glue_experiment(config)
  ds = load_dataset(config.data)
  train_x, train_y = ds["train"]
  test_x, test_y = ds["test"]
  num_classes = int(max(train_y.max(), test_y.max())) + 1
  if config.data.test_examples and config.data.test_examples < len(test_y):
    keep = np.random.default_rng(TEST_SUBSET_SEED).permutation(len(test_y))
    keep = np.sort(keep[:config.data.test_examples])
    test_x, test_y = test_x[keep], test_y[keep]

  parts = partition_clients(train_y, config.data)
  packed = data_lib.pack_clients(train_x, train_y, parts)
  clients = ClientData(x=jnp.asarray(packed.x), y=jnp.asarray(packed.y, jnp.int32),
                       num_examples=jnp.asarray(packed.num_examples, jnp.int32))
  histograms = data_lib.label_histograms(train_y, parts, num_classes)

  blackbox = make_blackbox(config.blackbox)
  prompt_options: dict[str, Any] = {"epsilon": config.prompt.epsilon,
                                    "region": config.prompt.region}
  if config.prompt.kind == "frame":
    prompt_options["resolution"] = config.prompt.frame_resolution
  prompt = make_prompt(config.prompt.kind, config.blackbox.input_size, config.task.image_size,
                       **prompt_options)
  unmapped = VisualReprogramming(blackbox, prompt, config.task.image_size,
                                 jnp.zeros((blackbox.output_size, num_classes)),
                                 config.task.background, config.task.loss_temperature)
  label_map, mapping_queries = cached_label_map(
      label_map_path, lambda: build_label_map(blackbox, unmapped.canvas, clients, num_classes,
                                              config.task, config.data.name))
  task = dataclasses.replace(unmapped, label_map=jnp.asarray(label_map))

  estimator = make_estimator(config.zo.estimator, config.zo.num_directions)
  client_optimizer = make_client_optimizer(config.client.optimizer)
  local_update = make_local_update(task.candidate_losses, estimator, client_optimizer,
                                   config.client.local_steps, config.client.batch_size)
  num_clients = config.data.num_clients
  algorithm, cohort_size, round_cost = build_algorithm(config, task.candidate_losses, estimator,
                                                       client_optimizer, local_update)
  local_only = make_local_only(local_update, num_clients, config.parallel.backend)
  hparams = HParams.create(lr=config.client.lr, lr_offset=config.client.lr_offset,
                           lr_decay=config.client.lr_decay, sigma=config.zo.sigma,
                           sigma_decay=config.zo.sigma_decay, momentum=config.zo.momentum)
  root_key = jax.random.key(config.seed)
  init_params = prompt.init(jax.random.fold_in(root_key, 2**31 - 1))
  return Experiment(config=config, task=task, clients=clients, test_x=test_x, test_y=test_y,
                    hparams=hparams, init_params=init_params, algorithm=algorithm,
                    local_only=local_only, root_key=root_key, label_histograms=histograms,
                    num_candidates=estimator.num_candidates, cohort_size=cohort_size,
                    mapping_queries=mapping_queries, round_cost=round_cost)
