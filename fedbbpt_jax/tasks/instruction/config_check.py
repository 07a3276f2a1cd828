"""Checks the instruction family's own fields of an ``experiments.train`` config
(``configs/instruction.py``) before anything is loaded: each failure a ``ConfigError``
naming the field, its value and the allowed range. The generic fields are checked by
``train``; model paths when the models are loaded.
"""

from __future__ import annotations

from typing import Any

from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.core.fields import (check_choice, check_number, check_registered, check_string,
                                     get_field)
from fedbbpt_jax.prompts import PROMPTS
from fedbbpt_jax.tasks.instruction.rule_tasks import RULES
from fedbbpt_jax.tasks.instruction.scorers import SCORERS
from fedbbpt_jax.zo import CONTINUOUS, ESTIMATORS


def check_task_fields(config: Any) -> None:
  """``task.*``: the task, its scorer, the exemplars and the execution demonstrations."""
  check_string(config, "task.json_path")
  if not get_field(config, "task.json_path"):
    check_choice(config, "task.name", RULES)
  check_choice(config, "task.scorer", SCORERS)
  check_number(config, "task.exemplars", low=1, integer=True)
  check_number(config, "task.demos", low=0, high=get_field(config, "task.exemplars"),
               integer=True, hint="demonstrations are taken from the exemplars")


def check_generator_fields(config: Any, *, path_required: bool) -> None:
  """``generator.*``: the open LLM and its soft prompt."""
  check_string(config, "generator.model_path", non_empty=path_required)
  for field in ("generator.intrinsic_dim", "generator.num_soft_tokens",
                "generator.max_new_tokens"):
    check_number(config, field, low=1, integer=True)
  check_number(config, "generator.projection_seed", low=0, integer=True)


def check_llm_fields(config: Any, section: str) -> None:
  """The black-box LLM's fields in ``config.<section>`` (an endpoint or a local model)."""
  for field in ("url", "model", "api_key_env", "model_path"):
    check_string(config, f"{section}.{field}")
  url = get_field(config, f"{section}.url")
  if url and not url.startswith(("http://", "https://")):
    raise ConfigError(f"config.{section}.url={url!r} must be '' (the local model_path) or an "
                      "http:// or https:// OpenAI-compatible endpoint")
  for field in ("max_tokens", "max_batch", "max_concurrency"):
    check_number(config, f"{section}.{field}", low=1, integer=True)
  check_number(config, f"{section}.budget_tokens", low=0, integer=True, hint="0 = unlimited")


def check_instruction_family_config(config: Any) -> None:
  """The instruction family's own fields of a ``experiments.train`` config
  (``configs/instruction.py``; the generic fields are checked by ``train``)."""
  check_choice(config, "data.partition", ("iid",))  # every label is 1: label skew is void
  check_number(config, "data.train_examples", low=1, integer=True)
  check_number(config, "data.test_examples", low=1, integer=True,
               hint="the family's test examples follow its training examples")
  check_number(config, "data.task_seed", low=0, integer=True)
  check_task_fields(config)
  check_registered(config, "prompt.kind", PROMPTS, tag="instruction")
  check_generator_fields(config, path_required=True)
  check_llm_fields(config, "llm")
  if not get_field(config, "llm.url") and not get_field(config, "llm.model_path"):
    raise ConfigError("config.llm.url and config.llm.model_path are both empty: name an "
                      "OpenAI-compatible endpoint or a local model")
  check_registered(config, "zo.estimator", ESTIMATORS, CONTINUOUS)
