"""Validates a text-family config (``config.task.family == 'text'``), naming the faulty field."""

from __future__ import annotations

import ml_collections

from fedbbpt_jax.blackbox.text_zoo import TEXT_MODELS
from fedbbpt_jax.data.drug_reviews import TASKS
from fedbbpt_jax.parallel import BACKENDS
from fedbbpt_jax.prompts import VOCABULARIES
from fedbbpt_jax.train.config_check import (SERVER_OPTIMIZERS, ConfigError, _choice, _get,
                                            _number, check_partition)
from fedbbpt_jax.zo import CATEGORICAL_ESTIMATORS

TEXT_DATASETS = ("drug_reviews",)
TEXT_PROMPTS = ("discrete",)
TEXT_CLIENT_OPTIMIZERS = ("adam", "adamw", "sgd")
TEXT_ALGORITHMS = ("fedbbpt", "fedone")


def validate_text_config(config: ml_collections.ConfigDict) -> None:
  """Raises ``ConfigError`` naming the first invalid field of a text ``config``."""
  _number(config, "seed", low=0, integer=True)
  _choice(config, "data.name", TEXT_DATASETS)
  _choice(config, "data.task", TASKS)
  _number(config, "data.min_train_reviews", low=1, integer=True)
  check_partition(config)
  _number(config, "data.partition_seed", low=0, integer=True)
  _choice(config, "blackbox.model", TEXT_MODELS)
  _number(config, "blackbox.max_length", low=4, high=512, integer=True)
  _number(config, "blackbox.budget_examples", low=0, integer=True)
  template = _get(config, "task.verbalizer_template")
  if not isinstance(template, str) or "{}" not in template:
    raise ConfigError(f"config.task.verbalizer_template={template!r} must be a string with one "
                      "'{}' where the class name goes")
  verbalizers = _get(config, "task.verbalizers")
  if not isinstance(verbalizers, (tuple, list)) or not all(isinstance(v, str) for v in verbalizers):
    raise ConfigError(f"config.task.verbalizers={verbalizers!r} must be a tuple of strings "
                      "(one per class) or () to use the template")
  _number(config, "task.temperature", low=0, low_inclusive=False)
  _choice(config, "prompt.kind", TEXT_PROMPTS)
  _number(config, "prompt.length", low=1, high=_get(config, "blackbox.max_length") - 3,
          integer=True)
  _choice(config, "prompt.vocabulary", VOCABULARIES)
  _number(config, "prompt.vocabulary_size", low=1, integer=True)
  _choice(config, "zo.estimator", CATEGORICAL_ESTIMATORS)
  _number(config, "zo.num_directions", low=2, integer=True)
  _choice(config, "client.optimizer", TEXT_CLIENT_OPTIMIZERS)
  _number(config, "client.weight_decay", low=0)
  _number(config, "client.lr", low=0, low_inclusive=False)
  _number(config, "client.lr_offset", low=0)
  _number(config, "client.lr_decay", low=0)
  _number(config, "client.local_steps", low=1, integer=True)
  _number(config, "client.batch_size", low=1, integer=True)
  _choice(config, "server.algorithm", TEXT_ALGORITHMS)
  _choice(config, "server.optimizer", SERVER_OPTIMIZERS)
  _number(config, "server.lr", low=0, low_inclusive=False)
  _number(config, "server.momentum", low=0, high=1)
  _number(config, "server.cohort_size", low=0, high=_get(config, "data.num_clients"),
          integer=True)
  _number(config, "train.rounds", low=1, integer=True)
  _number(config, "train.eval_every", low=1, integer=True)
  _number(config, "train.eval_batch_size", low=1, integer=True)
  _choice(config, "parallel.backend", BACKENDS)
  if "cpu_devices" in config.parallel:
    _number(config, "parallel.cpu_devices", low=0, integer=True)
