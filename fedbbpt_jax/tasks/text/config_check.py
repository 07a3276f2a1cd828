"""The text family's config fields (values only), each failure naming field, value and range."""

from __future__ import annotations

from typing import Any

from fedbbpt_jax.blackbox import BLACK_BOXES
from fedbbpt_jax.core import (MAX_SEED, ConfigError, check_choice, check_number, check_registered,
                              check_string, get_field, refuse_unread)
from fedbbpt_jax.data.drug_reviews import TASKS
from fedbbpt_jax.data.registry import DATASETS, TEXT
from fedbbpt_jax.prompts import VOCABULARIES
from fedbbpt_jax.prompts import PROMPTS
from fedbbpt_jax.tasks.text import prompt_kinds  # noqa: F401  (registers the text kinds)
from fedbbpt_jax.zo import CATEGORICAL, CONTINUOUS, ESTIMATORS


def check_text_config(config: Any) -> None:
  """Raises ``ConfigError`` naming the first invalid text-family field of ``config``."""
  check_registered(config, "data.name", DATASETS, TEXT)
  # Fields of one dataset (the drug reviews' data.task ...): checked when it runs,
  # refused when set for another (a user's text dataset needs none of them).
  refuse_unread(config, "data.name", {n: r for n, r in DATASETS.all_reads().items()
                                      if n in DATASETS.names(TEXT)})
  reads = DATASETS.reads(get_field(config, "data.name"))
  if "data.task" in reads:
    check_choice(config, "data.task", TASKS)
  if "data.min_train_reviews" in reads:
    check_number(config, "data.min_train_reviews", low=1, integer=True)
  check_registered(config, "blackbox.model", BLACK_BOXES, tag="text")
  check_number(config, "blackbox.max_length", low=4, high=512, integer=True)
  template = get_field(config, "task.verbalizer_template")
  if not isinstance(template, str) or (template and template.count("{}") != 1):
    raise ConfigError(f"config.task.verbalizer_template={template!r} must be a string with one "
                      "'{}' where the class name goes, or '' for the dataset's own")
  verbalizers = get_field(config, "task.verbalizers")
  if not isinstance(verbalizers, (tuple, list)) or not all(isinstance(v, str) for v in verbalizers):
    raise ConfigError(f"config.task.verbalizers={verbalizers!r} must be a tuple of strings "
                      "(one per class) or () to use the template")
  check_number(config, "task.temperature", low=0, low_inclusive=False)
  check_registered(config, "prompt.kind", PROMPTS, tag="text")
  check_number(config, "prompt.length", low=1, high=get_field(config, "blackbox.max_length") - 3,
               integer=True)
  check_discrete_fields(config)
  check_soft_fields(config)
  if get_field(config, "prompt.kind") == "soft":
    check_soft_prompt(config)
  else:
    check_registered(config, "zo.estimator", ESTIMATORS, CATEGORICAL)
    check_number(config, "zo.num_directions", low=2, integer=True)


def check_discrete_fields(config: Any) -> None:
  """The discrete prompt's vocabulary, where the config has it (whichever prompt kind)."""
  prompt = get_field(config, "prompt")
  if "vocabulary" in prompt or prompt.get("kind") != "soft":
    check_choice(config, "prompt.vocabulary", VOCABULARIES)
  if "vocabulary_size" in prompt or prompt.get("kind") != "soft":
    check_number(config, "prompt.vocabulary_size", low=1, integer=True)
  if "vocabulary_min_count" in prompt or prompt.get("kind") != "soft":
    check_number(config, "prompt.vocabulary_min_count", low=1, integer=True)


def check_soft_fields(config: Any) -> None:
  """BBT's soft-prompt fields, where the config has them (whichever prompt kind)."""
  prompt = get_field(config, "prompt")
  soft = prompt.get("kind") == "soft"
  if soft or "dim" in prompt:
    check_number(config, "prompt.dim", low=1, high=10000, integer=True)
  if soft or "init_text" in prompt:
    check_string(config, "prompt.init_text", non_empty=True,
                 hint="its word embeddings are the soft prompt at z = 0")
  if soft or "projection_seed" in prompt:
    check_number(config, "prompt.projection_seed", low=0, high=MAX_SEED, integer=True)
  for field in ("projection_alpha", "projection_sigma"):
    if soft or field in prompt:
      check_number(config, f"prompt.{field}", low=0, low_inclusive=False)


def check_soft_prompt(config: Any) -> None:
  """What BBT's soft prompt (``prompt.kind='soft'``) needs: the surrogate, a continuous search."""
  url = config.blackbox.get("url", "")
  if url:
    raise ConfigError(f"config.prompt.kind='soft' needs the local surrogate, but "
                      f"config.blackbox.url={url!r}: a provider API takes tokens, not input "
                      "embeddings; set config.blackbox.url='' or config.prompt.kind='discrete'")
  estimator = get_field(config, "zo.estimator")
  if estimator not in ESTIMATORS.names(CONTINUOUS):
    raise ConfigError(f"config.zo.estimator={estimator!r} is not a continuous estimator for "
                      f"config.prompt.kind='soft'; choose one of "
                      f"{list(ESTIMATORS.names(CONTINUOUS))}")
