"""The GLUE family's config fields, each failure naming field, value and range.

``check_glue_config`` checks values only, so a config can be validated (e.g. by
the sweep launcher) on a machine without the data or the weights.
``check_glue_paths`` checks the two local folders; the builder calls it before
loading anything, so an empty or wrong path fails at load time with a
``ConfigError`` naming the field and what the folder must contain.
"""

from __future__ import annotations

import os

import ml_collections

from fedbbpt_jax.core import (ConfigError, check_bool, check_choice, check_number,
                              check_registered, get_field)
from fedbbpt_jax.data.glue import GLUE_TASKS
from fedbbpt_jax.data.registry import DATASETS, GLUE
from fedbbpt_jax.prompts import PROMPTS, VOCABULARIES
from fedbbpt_jax.zo import CATEGORICAL, ESTIMATORS

GLUE_MODELS = ("roberta_mlm",)
VOCABULARY_TEXTS = ("clients", "train_split")
TEST_SPLITS = ("", "validation", "validation_matched", "validation_mismatched")
MODEL_FILES = "config.json, tokenizer.json and model.safetensors (or a legacy pytorch_model.bin)"
GLUE_FOLDER = ("the prepared array_record GLUE folder glue/<task>/<version>/ (dataset_info.json, "
               "features.json and the *.array_record files, e.g. from `tfds build glue/sst2 "
               "--file_format=array_record`)")


def check_glue_config(config: ml_collections.ConfigDict) -> None:
  """Raises ``ConfigError`` naming the first invalid GLUE-family field of ``config``."""
  check_registered(config, "data.name", DATASETS, GLUE)
  check_choice(config, "data.task", GLUE_TASKS)
  for field in ("data.tfds_dir", "blackbox.model_dir"):
    if not isinstance(get_field(config, field), str):
      raise ConfigError(f"config.{field}={get_field(config, field)!r} must be a path string")
  check_choice(config, "data.test_split", TEST_SPLITS)
  split, task = get_field(config, "data.test_split"), GLUE_TASKS[get_field(config, "data.task")]
  if split and split not in task.eval_splits:
    raise ConfigError(f"config.data.test_split={split!r} does not exist for "
                      f"config.data.task={task.name!r}; choose '' or one of "
                      f"{list(task.eval_splits)}")
  check_number(config, "data.k_shot", low=1, integer=True)
  check_number(config, "data.k_shot_seed", low=0, integer=True)
  if get_field(config, "data.examples_per_client"):
    raise ConfigError("config.data.examples_per_client must be 0 for GLUE: the k-shot protocol "
                      "sets the client sizes (use config.data.k_shot)")
  check_choice(config, "blackbox.model", GLUE_MODELS)
  check_number(config, "blackbox.max_length", low=8, high=512, integer=True)
  check_registered(config, "prompt.kind", PROMPTS, tag="glue")
  check_number(config, "prompt.length", low=1, high=get_field(config, "blackbox.max_length") - 6,
               integer=True)
  check_choice(config, "prompt.vocabulary", VOCABULARIES)
  check_number(config, "prompt.vocabulary_size", low=1, integer=True)
  check_choice(config, "prompt.vocabulary_texts", VOCABULARY_TEXTS)
  check_bool(config, "prompt.vocabulary_fill")
  check_registered(config, "zo.estimator", ESTIMATORS, CATEGORICAL)
  check_number(config, "zo.num_directions", low=2, integer=True)


def check_glue_paths(config: ml_collections.ConfigDict) -> None:
  """Raises ``ConfigError`` if ``blackbox.model_dir`` or ``data.tfds_dir`` cannot be used.

  The model folder must hold ``MODEL_FILES``; the TFDS folder must hold
  ``glue/<data.task>/`` (its version folders are checked by the loader).
  """
  model_dir = os.path.expanduser(get_field(config, "blackbox.model_dir"))
  if not model_dir:
    raise ConfigError(f"config.blackbox.model_dir is empty: set it to a local folder with "
                      f"{MODEL_FILES}, e.g. a copy of roberta-large (nothing is downloaded)")
  if not os.path.isdir(model_dir):
    raise ConfigError(f"config.blackbox.model_dir={model_dir!r} is not a folder; it must hold "
                      f"{MODEL_FILES}")
  missing = [f for f in ("config.json", "tokenizer.json") if not os.path.isfile(
      os.path.join(model_dir, f))]
  if not any(os.path.isfile(os.path.join(model_dir, f))
             for f in ("model.safetensors", "pytorch_model.bin")):
    missing.append("model.safetensors (or pytorch_model.bin)")
  if missing:
    raise ConfigError(f"config.blackbox.model_dir={model_dir!r} lacks {', '.join(missing)}; it "
                      f"must hold {MODEL_FILES}")
  tfds_dir = os.path.expanduser(get_field(config, "data.tfds_dir"))
  if not tfds_dir:
    raise ConfigError(f"config.data.tfds_dir is empty: set it to the TFDS data directory "
                      f"holding {GLUE_FOLDER}")
  task_dir = os.path.join(tfds_dir, "glue", get_field(config, "data.task"))
  if not os.path.isdir(task_dir):
    raise ConfigError(f"config.data.tfds_dir={tfds_dir!r} has no {task_dir}: it must hold "
                      f"{GLUE_FOLDER}")
