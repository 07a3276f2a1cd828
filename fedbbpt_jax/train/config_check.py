"""Validates an experiment config at load time, naming the faulty field."""

from __future__ import annotations

from typing import Any, Iterable

import ml_collections

from fedbbpt_jax.blackbox.zoo import IMAGE_MODELS
from fedbbpt_jax.parallel import BACKENDS
from fedbbpt_jax.prompts import PROMPTS
from fedbbpt_jax.tasks import MAPPINGS
from fedbbpt_jax.zo import ESTIMATORS

DATASETS = ("digits", "fashion_mnist")
PARTITIONS = ("dirichlet", "iid", "shards")
CLIENT_OPTIMIZERS = ("adam", "sgd")
SERVER_OPTIMIZERS = ("adam", "momentum", "sgd")
REGIONS = ("frame", "full")


class ConfigError(ValueError):
  """A config value is missing, of the wrong type, or out of range."""


def _get(config: ml_collections.ConfigDict, field: str) -> Any:
  node: Any = config
  for part in field.split("."):
    if part not in node:
      raise ConfigError(f"config field {field!r} is missing")
    node = node[part]
  return node


def _choice(config, field: str, allowed: Iterable[str]) -> None:
  value = _get(config, field)
  if value not in tuple(allowed):
    raise ConfigError(f"config.{field}={value!r} is not one of {sorted(allowed)}")


def _number(config, field: str, *, low: float | None = None, high: float | None = None,
            integer: bool = False, low_inclusive: bool = True) -> None:
  value = _get(config, field)
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise ConfigError(f"config.{field}={value!r} must be a number")
  if integer and int(value) != value:
    raise ConfigError(f"config.{field}={value!r} must be an integer")
  if low is not None and (value < low if low_inclusive else value <= low):
    op = ">=" if low_inclusive else ">"
    raise ConfigError(f"config.{field}={value!r} must be {op} {low}")
  if high is not None and value > high:
    raise ConfigError(f"config.{field}={value!r} must be <= {high}")


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ``ConfigError`` naming the first invalid field of ``config``."""
  _number(config, "seed", low=0, integer=True)
  _choice(config, "data.name", DATASETS)
  _choice(config, "data.partition", PARTITIONS)
  _number(config, "data.num_clients", low=1, integer=True)
  _number(config, "data.dirichlet_alpha", low=0, low_inclusive=False)
  _number(config, "data.shards_per_client", low=1, integer=True)
  _number(config, "data.examples_per_client", low=0, integer=True)
  _number(config, "data.test_examples", low=0, integer=True)
  _choice(config, "blackbox.model", IMAGE_MODELS)
  _number(config, "blackbox.input_size", low=16, high=512, integer=True)
  _number(config, "blackbox.budget_examples", low=0, integer=True)
  _number(config, "task.image_size", low=4, high=_get(config, "blackbox.input_size"),
          integer=True)
  _number(config, "task.background", low=0.0, high=1.0)
  _number(config, "task.loss_temperature", low=0.0)
  _choice(config, "task.label_mapping", MAPPINGS)
  _number(config, "task.sources_per_label", low=1, integer=True)
  _number(config, "task.mapping_examples_per_client", low=1, integer=True)
  _choice(config, "prompt.kind", PROMPTS)
  _choice(config, "prompt.region", REGIONS)
  _number(config, "prompt.epsilon", low=0, low_inclusive=False)
  _number(config, "prompt.frame_resolution", low=1, integer=True)
  _choice(config, "zo.estimator", ESTIMATORS)
  _number(config, "zo.num_directions", low=1, integer=True)
  _number(config, "zo.sigma", low=0, low_inclusive=False)
  _number(config, "zo.sigma_decay", low=0)
  _number(config, "zo.momentum", low=0, high=1)
  _choice(config, "client.optimizer", CLIENT_OPTIMIZERS)
  _number(config, "client.lr", low=0, low_inclusive=False)
  _number(config, "client.lr_offset", low=0)
  _number(config, "client.lr_decay", low=0)
  _number(config, "client.local_steps", low=1, integer=True)
  _number(config, "client.batch_size", low=1, integer=True)
  _choice(config, "server.optimizer", SERVER_OPTIMIZERS)
  _number(config, "server.lr", low=0, low_inclusive=False)
  _number(config, "server.momentum", low=0, high=1)
  _number(config, "server.cohort_size", low=0, high=_get(config, "data.num_clients"),
          integer=True)
  _number(config, "train.rounds", low=1, integer=True)
  _number(config, "train.eval_every", low=1, integer=True)
  _number(config, "train.eval_batch_size", low=1, integer=True)
  _choice(config, "parallel.backend", BACKENDS)
