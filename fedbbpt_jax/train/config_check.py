"""Validates an experiment config at load time, naming the faulty field."""

from __future__ import annotations

from typing import Any, Iterable

import ml_collections

from fedbbpt_jax.blackbox.wire import WIRE_DTYPES
from fedbbpt_jax.blackbox.zoo import IMAGE_MODELS
from fedbbpt_jax.parallel import BACKENDS
from fedbbpt_jax.prompts import PROMPTS
from fedbbpt_jax.tasks import MAPPINGS
from fedbbpt_jax.train.algorithms import FEDBPT_ESTIMATOR, SERVER_ALGORITHMS
from fedbbpt_jax.zo import ESTIMATORS, EVOLUTION_STRATEGIES

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


def check_remote_blackbox(config) -> None:
  """Checks the fields of the served-model black box (``blackbox.url`` and friends).

  Configs without a ``blackbox.url`` field use the local surrogate and skip them.
  """
  if "url" not in _get(config, "blackbox"):
    return
  url = _get(config, "blackbox.url")
  if not isinstance(url, str) or (url and not url.startswith(("http://", "https://"))):
    raise ConfigError(f"config.blackbox.url={url!r} must be '' (local surrogate) or an "
                      "http:// or https:// URL such as 'http://127.0.0.1:8000'")
  env_var = _get(config, "blackbox.api_key_env")
  if not isinstance(env_var, str) or (env_var and not env_var.replace("_", "a").isalnum()):
    raise ConfigError(f"config.blackbox.api_key_env={env_var!r} must name an environment "
                      "variable (letters, digits, '_'); put the key there, not in the config")
  if "wire_dtype" in _get(config, "blackbox"):  # image configs; text ids always go as int32
    _choice(config, "blackbox.wire_dtype", WIRE_DTYPES)
  _number(config, "blackbox.max_attempts", low=1, integer=True)
  _number(config, "blackbox.backoff_seconds", low=0)
  _number(config, "blackbox.timeout_seconds", low=0, low_inclusive=False)
  _number(config, "blackbox.max_concurrency", low=1, integer=True)


def _check_algorithm(config) -> None:
  """Checks ``server.algorithm`` (absent in older configs: Fed-BBPT) and what it needs."""
  estimator = _get(config, "zo.estimator")
  directions = _get(config, "zo.num_directions")
  if estimator in EVOLUTION_STRATEGIES:
    _number(config, "zo.num_directions", low=2, integer=True)
    if estimator != "cma_es" and directions % 2:
      raise ConfigError(f"config.zo.num_directions={directions} must be even for "
                        f"config.zo.estimator={estimator!r} (antithetic pairs)")
  if "algorithm" not in _get(config, "server"):
    return
  _choice(config, "server.algorithm", SERVER_ALGORITHMS)
  if _get(config, "server.algorithm") == "fedbpt" and estimator != FEDBPT_ESTIMATOR:
    raise ConfigError(f"config.server.algorithm='fedbpt' runs CMA-ES on the clients: set "
                      f"config.zo.estimator='{FEDBPT_ESTIMATOR}' (got {estimator!r})")


def check_partition(config: ml_collections.ConfigDict) -> None:
  """Checks the client-partition fields every task family shares."""
  _choice(config, "data.partition", PARTITIONS)
  _number(config, "data.num_clients", low=1, integer=True)
  _number(config, "data.dirichlet_alpha", low=0, low_inclusive=False)
  _number(config, "data.shards_per_client", low=1, integer=True)
  _number(config, "data.examples_per_client", low=0, integer=True)
  _number(config, "data.test_examples", low=0, integer=True)


def check_client_schedule(config: ml_collections.ConfigDict) -> None:
  """The client step-size schedule, local steps and minibatch (every task family)."""
  _number(config, "client.lr", low=0, low_inclusive=False)
  _number(config, "client.lr_offset", low=0)
  _number(config, "client.lr_decay", low=0)
  _number(config, "client.local_steps", low=1, integer=True)
  _number(config, "client.batch_size", low=1, integer=True)


def check_server(config: ml_collections.ConfigDict) -> None:
  """The server optimizer and cohort size (every task family)."""
  _choice(config, "server.optimizer", SERVER_OPTIMIZERS)
  _number(config, "server.lr", low=0, low_inclusive=False)
  _number(config, "server.momentum", low=0, high=1)
  _number(config, "server.cohort_size", low=0, high=_get(config, "data.num_clients"),
          integer=True)


def check_loop(config: ml_collections.ConfigDict) -> None:
  """The round loop and the cohort backend (every task family)."""
  _number(config, "train.rounds", low=1, integer=True)
  _number(config, "train.eval_every", low=1, integer=True)
  _number(config, "train.eval_batch_size", low=1, integer=True)
  _choice(config, "parallel.backend", BACKENDS)
  if "cpu_devices" in config.parallel:
    _number(config, "parallel.cpu_devices", low=0, integer=True)


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ``ConfigError`` naming the first invalid field of ``config``."""
  family = config.get("task", {}).get("family", "image")
  if family == "text":
    from fedbbpt_jax.train.config_check_text import validate_text_config  # pylint: disable=g-import-not-at-top
    return validate_text_config(config)
  if family == "glue":
    from fedbbpt_jax.train.config_check_glue import validate_glue_config  # pylint: disable=g-import-not-at-top
    return validate_glue_config(config)
  if family != "image":
    raise ConfigError(f"config.task.family={family!r} is not one of ['glue', 'image', 'text']")
  _number(config, "seed", low=0, integer=True)
  _choice(config, "data.name", DATASETS)
  check_partition(config)
  _choice(config, "blackbox.model", IMAGE_MODELS)
  _number(config, "blackbox.input_size", low=16, high=512, integer=True)
  _number(config, "blackbox.budget_examples", low=0, integer=True)
  check_remote_blackbox(config)
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
  check_client_schedule(config)
  check_server(config)
  _check_algorithm(config)
  check_loop(config)
