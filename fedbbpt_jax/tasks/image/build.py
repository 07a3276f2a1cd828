"""Builds the image family's ``TaskBundle``: visual reprogramming of a frozen classifier.

Data flow: a registered image dataset -> client parts -> packed clients; the black
box (``blackbox.model``, local or served); the visual prompt (``prompt.kind``); the
label mapping from the clients' unprompted predictions (cached in the workdir, so
a resume does not query the black box again), re-derived from the prompted
predictions every ``task.remap_every`` rounds when that is > 0 (ILM-VP).

A zero-shot black box (``blackbox.model='clip'``) is built for the dataset's classes: its
head is the dataset's ``class_names`` with the templates of ``blackbox.templates``
(``zero_shot_head``), its outputs are those classes, and the label mapping is
``'identity'`` (the config check requires it).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.blackbox.factory import make_blackbox
from fedbbpt_jax.blackbox.zero_shot import ZeroShotHead, templates_from_spec
from fedbbpt_jax.blackbox.zoo import is_zero_shot
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.data import (DATASETS, ClientData, client_data, client_parts,
                              describe_test_subset, label_histograms, test_subset)
from fedbbpt_jax.prompts import make_prompt, place_on_canvas
from fedbbpt_jax.tasks.image.mappings import LABEL_MAPPINGS
from fedbbpt_jax.tasks.image.remap import cached_label_map, make_label_map_refresh
from fedbbpt_jax.tasks.image.visual_reprogramming import VisualReprogramming
from fedbbpt_jax.tasks.protocol import BuildOptions, TaskBundle

LABEL_MAP_FILE = "label_map.npz"  # the label mapping, reused on resume


# Prompt generators whose encoder features are centred on the clients' mean feature.
CENTRED_PROMPTS = ("frame_mixture",)
# prompt.encoder of a config that sets none, by prompt.kind (others: 'random').
DEFAULT_ENCODERS = {"frame_mixture": "efficientnet_lite0"}


def mean_client_feature(features: Callable[[jnp.ndarray], jnp.ndarray], clients: ClientData,
                        m: int) -> np.ndarray:
  """Mean encoder feature over every client's first ``m`` images.

  Each client runs its own frozen encoder and sends one feature sum and a count (a
  one-off secure sum of ``C + 1`` numbers); no black-box query is made.
  """
  total, count = 0.0, 0
  for i in range(clients.num_examples.shape[0]):
    n = min(m, int(clients.num_examples[i]))
    if n:
      total = total + np.asarray(features(jnp.asarray(clients.x[i, :n]))).sum(axis=0)
      count += n
  return np.asarray(total / max(count, 1), np.float32)


def image_prompt_options(prompt: Any) -> dict[str, Any]:
  """The options ``make_prompt`` gets for ``prompt.kind`` from the ``prompt`` block."""
  options: dict[str, Any] = {"epsilon": prompt.epsilon}
  if prompt.kind != "blackvip":  # BlackVIP's prompt covers the whole canvas
    options["region"] = prompt.region
  if prompt.kind in ("coordinator", "frame_mixture", "blackvip"):
    options.update(encoder=prompt.get("encoder", DEFAULT_ENCODERS.get(prompt.kind, "random")),
                   encoder_blocks=prompt.get("encoder_blocks", 8),
                   encoder_weights=prompt.get("encoder_weights", "") or None)
  if prompt.kind in ("frame", "frame_mixture", "intrinsic_frame"):
    options["resolution"] = prompt.frame_resolution
  if prompt.kind == "intrinsic_frame":
    options.update(intrinsic_dim=prompt.get("intrinsic_dim", 48), rank=prompt.get("rank", 2))
  if prompt.kind == "frame_mixture":
    options["num_patterns"] = prompt.get("num_patterns", 4)
  if prompt.kind == "blackvip":
    options["bn"] = prompt.get("bn", "example")
  return options


def zero_shot_head(config: Any, class_names: Any) -> ZeroShotHead | None:
  """The head a zero-shot black box is built for: the dataset's class names and
  ``blackbox.templates``; None for a model with its own classes.

  Raises:
    ConfigError: the dataset has no class names (naming ``data.name``).
  """
  if not is_zero_shot(config.blackbox.model):
    return None
  if not class_names:
    raise ConfigError(f"config.blackbox.model={config.blackbox.model!r} classifies over the "
                      f"dataset's class names, and config.data.name={config.data.name!r} gives "
                      "none (its loader returns no 'class_names'; the coop:<set> datasets do)")
  return ZeroShotHead(tuple(str(c) for c in class_names),
                      templates_from_spec(config.blackbox.templates))


def build_image_task(config: Any, options: BuildOptions) -> TaskBundle:
  """Loads the dataset, partitions it, builds black box, prompt, label mapping and task."""
  ds = DATASETS.get(config.data.name, "data.name")(config.data)
  train_x, train_y = ds["train"]
  test_x, test_y = ds["test"]
  class_names = ds.get("class_names")
  num_classes = max(int(max(train_y.max(), test_y.max())) + 1, len(class_names or ()))
  split_size = len(test_y)
  test_x, test_y = test_subset(test_x, test_y, config.data.test_examples)
  parts = client_parts(train_y, config.data)
  clients = options.clients(client_data(train_x, train_y, parts), num_classes)

  blackbox = options.wrap(make_blackbox(config.blackbox, zero_shot_head(config, class_names)))
  prompt_options = image_prompt_options(config.prompt)
  prompt = make_prompt(config.prompt.kind, config.blackbox.input_size, config.task.image_size,
                       **prompt_options)
  if config.prompt.kind in CENTRED_PROMPTS:
    encode = jax.jit(lambda x: prompt.features(place_on_canvas(
        x, config.blackbox.input_size, config.task.image_size, config.task.background)))
    prompt = make_prompt(config.prompt.kind, config.blackbox.input_size, config.task.image_size,
                         feature_center=mean_client_feature(
                             encode, clients, config.task.mapping_examples_per_client),
                         **prompt_options)
  unmapped = VisualReprogramming(blackbox, prompt, config.task.image_size,
                                 jnp.zeros((blackbox.output_size, num_classes)),
                                 config.task.background, config.task.loss_temperature)
  cache = os.path.join(options.workdir, LABEL_MAP_FILE) if options.workdir else None
  derive = LABEL_MAPPINGS.get(config.task.label_mapping, "task.label_mapping")
  label_map, setup_examples, setup_calls = cached_label_map(
      cache, lambda: derive(jax.jit(lambda x: unmapped.source_logits(None, x)), clients,
                            num_classes, config.task, config.data.name, blackbox.output_size))
  task = dataclasses.replace(unmapped, label_map=jnp.asarray(label_map))
  remap_every = int(config.task.get("remap_every", 0))
  return TaskBundle(task=task, blackbox=blackbox, clients=clients, test_x=test_x,
                    test_y=test_y, init_prompt=prompt.init,
                    label_histograms=label_histograms(train_y, parts, num_classes),
                    test_split=describe_test_subset(config.data.name, len(test_y), split_size),
                    setup_examples=setup_examples, setup_calls=setup_calls,
                    cache_files=(LABEL_MAP_FILE,) if cache else (),
                    refresh_every=remap_every,
                    refresh=make_label_map_refresh(task, clients, config.task, config.data.name,
                                                   options.workdir) if remap_every else None)
