"""Validates a text-family config (``config.task.family == 'text'``), naming the faulty field."""

from __future__ import annotations

import ml_collections

from fedbbpt_jax.blackbox.text_zoo import TEXT_MODELS
from fedbbpt_jax.data.drug_reviews import TASKS
from fedbbpt_jax.prompts import VOCABULARIES
from fedbbpt_jax.train.config_check import (ConfigError, _choice, _get, _number,
                                            check_client_schedule, check_loop, check_partition,
                                            check_remote_blackbox, check_server)
from fedbbpt_jax.train.algorithms import FEDBPT_ESTIMATOR
from fedbbpt_jax.zo import CATEGORICAL_ESTIMATORS, ESTIMATORS, EVOLUTION_STRATEGIES

TEXT_DATASETS = ("drug_reviews",)
TEXT_PROMPTS = ("discrete", "soft")
TEXT_CLIENT_OPTIMIZERS = ("adam", "adamw", "sgd")
SOFT_CLIENT_OPTIMIZERS = ("adam", "sgd")
TEXT_ALGORITHMS = ("centralized", "fedbbpt", "fedbpt", "fedone")
SOFT_ONLY_ALGORITHMS = ("fedbpt",)


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
  check_remote_blackbox(config)
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
  if _get(config, "prompt.kind") == "soft":
    _check_soft_prompt(config)
  else:
    _choice(config, "prompt.vocabulary", VOCABULARIES)
    _number(config, "prompt.vocabulary_size", low=1, integer=True)
    _choice(config, "zo.estimator", CATEGORICAL_ESTIMATORS)
    _number(config, "zo.num_directions", low=2, integer=True)
    _choice(config, "client.optimizer", TEXT_CLIENT_OPTIMIZERS)
  _number(config, "client.weight_decay", low=0)
  check_client_schedule(config)
  _check_text_algorithm(config)
  check_server(config)
  check_loop(config)


def _check_soft_prompt(config: ml_collections.ConfigDict) -> None:
  """Fields of BBT's soft prompt (``prompt.kind='soft'``) and its continuous search."""
  url = config.blackbox.get("url", "")
  if url:
    raise ConfigError(f"config.prompt.kind='soft' needs the local surrogate, but "
                      f"config.blackbox.url={url!r}: a provider API takes tokens, not input "
                      "embeddings; set config.blackbox.url='' or config.prompt.kind='discrete'")
  _number(config, "prompt.dim", low=1, high=10000, integer=True)
  init_text = _get(config, "prompt.init_text")
  if not isinstance(init_text, str) or not init_text.strip():
    raise ConfigError(f"config.prompt.init_text={init_text!r} must be a non-empty string (its "
                      "word embeddings are the soft prompt at z = 0)")
  _number(config, "prompt.projection_seed", low=0, integer=True)
  _number(config, "prompt.projection_alpha", low=0, low_inclusive=False)
  _number(config, "prompt.projection_sigma", low=0, low_inclusive=False)
  estimator = _get(config, "zo.estimator")
  if estimator not in ESTIMATORS:
    raise ConfigError(f"config.zo.estimator={estimator!r} is not a continuous estimator for "
                      f"config.prompt.kind='soft'; choose one of {sorted(ESTIMATORS)}")
  _number(config, "zo.num_directions", low=1, integer=True)
  directions = _get(config, "zo.num_directions")
  if estimator in EVOLUTION_STRATEGIES:
    _number(config, "zo.num_directions", low=2, integer=True)
    if estimator != FEDBPT_ESTIMATOR and directions % 2:
      raise ConfigError(f"config.zo.num_directions={directions} must be even for "
                        f"config.zo.estimator={estimator!r} (antithetic pairs)")
  _number(config, "zo.sigma", low=0, low_inclusive=False)
  _number(config, "zo.sigma_decay", low=0)
  _number(config, "zo.momentum", low=0, high=1)
  _choice(config, "client.optimizer", SOFT_CLIENT_OPTIMIZERS)


def _check_text_algorithm(config: ml_collections.ConfigDict) -> None:
  """``server.algorithm`` and what it needs of the prompt and the estimator."""
  _choice(config, "server.algorithm", TEXT_ALGORITHMS)
  algorithm = _get(config, "server.algorithm")
  kind = _get(config, "prompt.kind")
  if algorithm in SOFT_ONLY_ALGORITHMS and kind != "soft":
    raise ConfigError(f"config.server.algorithm={algorithm!r} searches a continuous prompt with "
                      f"CMA-ES: set config.prompt.kind='soft' (got {kind!r}) and "
                      f"config.zo.estimator='{FEDBPT_ESTIMATOR}'")
  if algorithm == "fedbpt":
    estimator = _get(config, "zo.estimator")
    if estimator != FEDBPT_ESTIMATOR:
      raise ConfigError(f"config.server.algorithm='fedbpt' runs CMA-ES on the clients: set "
                        f"config.zo.estimator='{FEDBPT_ESTIMATOR}' (got {estimator!r})")
    cohort = _get(config, "server.cohort_size") or _get(config, "data.num_clients")
    if cohort < 2:
      raise ConfigError(f"config.server.algorithm='fedbpt' needs a cohort of >= 2 clients (the "
                        f"global CMA-ES population): config.server.cohort_size="
                        f"{_get(config, 'server.cohort_size')} with config.data.num_clients="
                        f"{_get(config, 'data.num_clients')} gives {cohort}")
