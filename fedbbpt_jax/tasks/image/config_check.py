"""The image family's config fields (values only), each failure naming field, value and range."""

from __future__ import annotations

from typing import Any

from fedbbpt_jax.blackbox import BLACK_BOXES
from fedbbpt_jax.blackbox.zero_shot import templates_from_spec
from fedbbpt_jax.blackbox.zoo import is_zero_shot
from fedbbpt_jax.core import (ConfigError, assignment, check_choice, check_number,
                              check_registered, check_string, get_field, refuse_unread)
from fedbbpt_jax.data.registry import DATASETS, IMAGE
from fedbbpt_jax.prompts import PROMPTS
from fedbbpt_jax.prompts.blackvip import BN_MODES, OUTPUT_SIZE
from fedbbpt_jax.prompts.encoders import ENCODERS
from fedbbpt_jax.tasks.image.mappings import LABEL_MAPPINGS, REMAPPABLE
from fedbbpt_jax.tasks.image.remap import REMAP_ACCEPT
from fedbbpt_jax.zo import CONTINUOUS, ESTIMATORS

REGIONS = ("frame", "full")
# Prompt kinds whose encoder gives a vector per image (pooled) / a feature map.
VECTOR_ENCODER_PROMPTS = ("blackvip", "frame_mixture")
MAP_ENCODER_PROMPTS = ("coordinator",)


def check_image_config(config: Any) -> None:
  """Raises ``ConfigError`` naming the first invalid image-family field of ``config``."""
  check_registered(config, "data.name", DATASETS, IMAGE)
  for field in ("source_dir", "tfds_dir"):  # folders read by the dataset's loader ('' = none)
    if field in get_field(config, "data"):
      check_string(config, f"data.{field}", hint="a folder path, or ''")
  check_registered(config, "blackbox.model", BLACK_BOXES, tag="image")
  check_number(config, "blackbox.input_size", low=16, high=512, integer=True)
  if "weights_path" in get_field(config, "blackbox"):
    check_string(config, "blackbox.weights_path",
                 hint="the black box's weights (a file or folder), or '' for the model's default")
  if "templates" in get_field(config, "blackbox"):
    check_string(config, "blackbox.templates",
                 hint="a zero-shot model's templates ('blackvip:<set>', 'ensemble:<set>' or "
                 "templates separated by '|'), or ''")
  refuse_unread(config, "blackbox.model", BLACK_BOXES.all_reads())
  check_zero_shot(config)
  check_number(config, "task.image_size", low=4, high=get_field(config, "blackbox.input_size"),
               integer=True)
  check_number(config, "task.background", low=0.0, high=1.0)
  check_number(config, "task.loss_temperature", low=0.0)
  check_registered(config, "task.label_mapping", LABEL_MAPPINGS)
  check_number(config, "task.sources_per_label", low=1, integer=True)
  check_number(config, "task.mapping_examples_per_client", low=1, integer=True)
  if "remap_accept" in get_field(config, "task"):
    check_choice(config, "task.remap_accept", REMAP_ACCEPT)
  if "remap_every" in get_field(config, "task"):
    check_number(config, "task.remap_every", low=0, integer=True)
    if (get_field(config, "task.remap_every")
        and get_field(config, "task.label_mapping") not in LABEL_MAPPINGS.names(REMAPPABLE)):
      raise ConfigError(f"config.task.remap_every={get_field(config, 'task.remap_every')} "
                        "re-derives the label mapping from prompted predictions; "
                        f"config.task.label_mapping={get_field(config, 'task.label_mapping')!r} "
                        "cannot be re-derived: set config.task.remap_every=0 or "
                        f"label_mapping to one of {list(LABEL_MAPPINGS.names(REMAPPABLE))}")
  check_registered(config, "prompt.kind", PROMPTS, tag="image")
  check_choice(config, "prompt.region", REGIONS)
  check_number(config, "prompt.epsilon", low=0, low_inclusive=False)
  check_number(config, "prompt.frame_resolution", low=1, integer=True)
  if "encoder" in get_field(config, "prompt"):
    check_registered(config, "prompt.encoder", ENCODERS)
  if "num_patterns" in get_field(config, "prompt"):
    check_number(config, "prompt.num_patterns", low=1, integer=True)
  if "encoder_blocks" in get_field(config, "prompt"):
    check_number(config, "prompt.encoder_blocks", low=1, high=16, integer=True)
  if "encoder_weights" in get_field(config, "prompt"):
    check_string(config, "prompt.encoder_weights",
                 hint="the frozen encoder's weights (a file or folder), or '' for the default")
  if "bn" in get_field(config, "prompt"):
    check_choice(config, "prompt.bn", BN_MODES)
  if "rank" in get_field(config, "prompt"):
    check_number(config, "prompt.rank", low=1, integer=True)
  if "intrinsic_dim" in get_field(config, "prompt"):
    check_number(config, "prompt.intrinsic_dim", low=3, integer=True)
    if get_field(config, "prompt.intrinsic_dim") % 3:
      raise ConfigError(f"config.prompt.intrinsic_dim={get_field(config, 'prompt.intrinsic_dim')}"
                        " must be a multiple of 3 (one row of the low-rank matrix per colour "
                        "channel)")
  check_prompt_encoder(config)
  if get_field(config, "prompt.kind") == "blackvip":
    check_blackvip(config)
  refuse_unread(config, "prompt.kind", PROMPTS.all_reads())
  check_registered(config, "zo.estimator", ESTIMATORS, CONTINUOUS)


def check_zero_shot(config: Any) -> None:
  """A zero-shot black box (CLIP) answers over the dataset's classes: its templates must
  read (``blackbox.templates``) and output ``i`` is class ``i`` (``task.label_mapping=
  'identity'``: no frequency mapping, no ILM)."""
  model = get_field(config, "blackbox.model")
  if not is_zero_shot(model):
    return
  spec = get_field(config, "blackbox.templates")
  try:
    templates_from_spec(spec)
  except ValueError as e:
    raise ConfigError(f"config.blackbox.templates={spec!r}: config.blackbox.model={model!r} "
                      f"embeds the dataset's class names in these templates; {e}") from None
  mapping = get_field(config, "task.label_mapping")
  if mapping != "identity":
    raise ConfigError(f"config.task.label_mapping={mapping!r}: config.blackbox.model={model!r} "
                      "answers over the dataset's own classes (a zero-shot head of its class "
                      "names), so output i is class i; set config.task.label_mapping='identity'")


def check_prompt_encoder(config: Any) -> None:
  """``prompt.encoder='vit'`` (one [CLS] vector per image) needs a prompt kind that reads
  a vector, not a feature map, and ``prompt.encoder_weights``."""
  prompt = get_field(config, "prompt")
  if prompt.get("encoder") != "vit":
    return
  kind = prompt.get("kind")
  if kind in MAP_ENCODER_PROMPTS:
    raise ConfigError(f"config.prompt.encoder='vit' gives one [CLS] vector per image, and "
                      f"config.prompt.kind={kind!r} decodes a feature map; use "
                      f"{assignment('prompt.kind', VECTOR_ENCODER_PROMPTS)} or another encoder")
  if kind in VECTOR_ENCODER_PROMPTS and not prompt.get("encoder_weights", ""):
    raise ConfigError("config.prompt.encoder='vit' needs config.prompt.encoder_weights: a "
                      "local Hugging Face ViT or ViT-MAE folder (BlackVIP: facebook/vit-mae-base)")


def check_blackvip(config: Any) -> None:
  """BlackVIP's coordinator decodes to CLIP's 224 x 224 input and covers all of it."""
  size = get_field(config, "blackbox.input_size")
  if size != OUTPUT_SIZE:
    raise ConfigError(f"config.blackbox.input_size={size}: config.prompt.kind='blackvip' "
                      f"decodes a 7x7 map to {OUTPUT_SIZE}x{OUTPUT_SIZE} (BlackVIP's CLIP "
                      f"input); set config.blackbox.input_size={OUTPUT_SIZE} or use "
                      "config.prompt.kind='coordinator'")
  region = get_field(config, "prompt.region")
  if region != "full":
    raise ConfigError(f"config.prompt.region={region!r}: config.prompt.kind='blackvip' covers "
                      "the whole image (BlackVIP); set config.prompt.region='full'")
