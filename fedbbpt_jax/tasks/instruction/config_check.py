"""Checks every field of an instruction config (``configs/instruction.py``) before anything
is loaded: each failure a ``ConfigError`` naming the field, its value and the allowed range.

``server.aggregator`` is checked where it is resolved (``experiments.instruct``, with the
``federated`` registry); the model paths when the models are loaded.
"""

from __future__ import annotations

from typing import Any

from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.core.fields import check_choice, check_number, check_string, get_field
from fedbbpt_jax.tasks.instruction.rule_tasks import RULES
from fedbbpt_jax.tasks.instruction.scorers import SCORERS
from fedbbpt_jax.zo import CONTINUOUS, ESTIMATORS

METHODS = ("federated", "local_only", "bo")


def check_instruction_config(config: Any) -> None:
  """Raises ``ConfigError`` for the first field out of range (see the module docstring)."""
  check_choice(config, "method", METHODS)
  check_number(config, "seed", low=0, integer=True)
  check_string(config, "task.json_path")
  if not get_field(config, "task.json_path"):
    check_choice(config, "task.name", RULES)
  check_choice(config, "task.scorer", SCORERS)
  for field in ("task.exemplars", "task.examples_per_client", "task.num_clients",
                "task.test_examples"):
    check_number(config, field, low=1, integer=True)
  check_number(config, "task.demos", low=0, integer=True)
  if config.task.demos > config.task.exemplars:
    raise ConfigError(f"config.task.demos={config.task.demos} must be <= config.task.exemplars="
                      f"{config.task.exemplars} (the demonstrations are taken from the exemplars)")
  check_string(config, "generator.model_path")
  for field in ("generator.intrinsic_dim", "generator.num_soft_tokens",
                "generator.max_new_tokens"):
    check_number(config, field, low=1, integer=True)
  check_number(config, "generator.projection_seed", low=0, integer=True)
  for field in ("blackbox.url", "blackbox.model", "blackbox.api_key_env", "blackbox.model_path"):
    check_string(config, field)
  for field in ("blackbox.max_tokens", "blackbox.max_batch"):
    check_number(config, field, low=1, integer=True)
  check_number(config, "blackbox.budget_tokens", low=0, integer=True, hint="0 = unlimited")
  check_choice(config, "zo.estimator",
               [n for n in ESTIMATORS.names() if CONTINUOUS in ESTIMATORS.tags(n)])
  check_number(config, "zo.num_directions", low=1, integer=True)
  check_number(config, "zo.sigma", low=0, low_inclusive=False)
  check_number(config, "zo.lr", low=0, low_inclusive=False)
  check_number(config, "train.rounds", low=1, integer=True)
  check_number(config, "train.local_steps", low=1, integer=True)
  check_string(config, "server.aggregator", non_empty=True)
  check_number(config, "bo.initial", low=2, integer=True, hint="the GP needs two points")
  check_number(config, "bo.iterations", low=0, integer=True)
  check_number(config, "bo.batch", low=1, integer=True)
