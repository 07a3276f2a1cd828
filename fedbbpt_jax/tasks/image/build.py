"""Builds the image family's ``TaskBundle``: visual reprogramming of a frozen classifier.

Data flow: a registered image dataset -> client parts -> packed clients; the black
box (``blackbox.model``, local or served); the visual prompt (``prompt.kind``); the
label mapping from the clients' unprompted prediction counts (cached in the workdir, so
a resume does not query the black box again), re-derived from the prompted
predictions every ``task.remap_every`` rounds when that is > 0 (ILM-VP). The set-up
comes from statistics every client computes on its own images
(``setup_statistics.py``), so a deployment's server derives it without them.

A dataset with its own clients (``data.partition='natural'``, e.g. ``client_folders``)
gives them one by one: a simulation loads every one, a node only its own, the server
none (``natural_clients``); such a node needs no test set unless it evaluates.

A zero-shot black box (``blackbox.model='clip'``) is built for the dataset's classes: its
head is the dataset's ``class_names`` with the templates of ``blackbox.templates``
(``zero_shot_head``), its outputs are those classes, and the label mapping is
``'identity'`` (the config check requires it).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.blackbox.factory import make_blackbox
from fedbbpt_jax.blackbox.zero_shot import ZeroShotHead, templates_from_spec
from fedbbpt_jax.blackbox.zoo import is_zero_shot
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.data import (DATASETS, ClientData, client_data, client_parts,
                              describe_test_subset, label_histograms, natural_parts,
                              size_only_clients, test_subset)
from fedbbpt_jax.prompts import make_prompt, place_on_canvas
from fedbbpt_jax.tasks.image.mappings import LABEL_MAPPINGS
from fedbbpt_jax.tasks.image.remap import cached_label_map, make_label_map_refresh
from fedbbpt_jax.tasks.image.setup_statistics import (FEATURE_SUMS, LABEL_COUNTS, REMAP_CORRECT,
                                                      REMAP_COUNTS, feature_sums, label_counts,
                                                      remap_correct, remap_counts)
from fedbbpt_jax.tasks.image.visual_reprogramming import VisualReprogramming
from fedbbpt_jax.tasks.local_setup import (Gather, local_gather, read_setup_file, summed,
                                          write_setup_file)
from fedbbpt_jax.tasks.protocol import NODE, SERVER, SIMULATION, BuildOptions, TaskBundle

LABEL_MAP_FILE = "label_map.npz"  # the label mapping, reused on resume
FEATURE_CENTER_FILE = "feature_center.npz"  # frame_mixture's centre, reused on resume


# Prompt generators whose encoder features are centred on the clients' mean feature.
CENTRED_PROMPTS = ("frame_mixture",)
# prompt.encoder of a config that sets none, by prompt.kind (others: 'random').
DEFAULT_ENCODERS = {"frame_mixture": "efficientnet_lite0"}


def mean_feature(gather: Gather) -> np.ndarray:
  """The clients' mean encoder feature over their mapping images: each client sends one
  feature sum and a count (``feature_sums``; no black-box query)."""
  stats = gather(FEATURE_SUMS, {})
  return np.asarray(summed(stats, "sum") / max(int(summed(stats, "count")), 1), np.float32)


def num_image_classes(test_y: np.ndarray, class_names: Any,
                      train_y: np.ndarray | None = None) -> int:
  """The task's class count: the labels seen (test split, and the training split where
  this process holds it) and the dataset's class names."""
  labels = [y for y in (test_y, train_y) if y is not None and len(y)]
  seen = max((int(np.max(y)) for y in labels), default=-1)
  return max(seen + 1, len(class_names or ()))


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


def natural_clients(config: Any, options: BuildOptions, source: Any, num_classes: int,
                    test_x: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
  """Rows and index sets of the clients a dataset with its own clients gives this process
  (``data/registry.py``): every one, in index order, in a simulation (there must be
  ``data.num_clients``); only ``partition_id``'s on a node (it opens no other client).

  Raises:
    ConfigError: a simulation's client count is not ``data.num_clients``; the clients'
      images (or the test set's) differ in shape; a label beyond the classes.
  """
  data = config.data
  if options.role == NODE:
    ids = [options.partition_id]
  else:
    ids = list(range(source.num_clients))
    if len(ids) != data.num_clients:
      raise ConfigError(f"config.data.num_clients={data.num_clients}: config.data.name="
                        f"{data.name!r} holds {len(ids)} clients (config.data.partition="
                        f"{data.partition!r} takes them all): set config.data.num_clients="
                        f"{len(ids)}")
  loaded = [source.load(i) for i in ids]
  shapes = {i: np.asarray(x).shape[1:] for i, (x, _) in zip(ids, loaded)}
  if len(test_x):
    shapes["the test set"] = test_x.shape[1:]
  if len(set(shapes.values())) > 1:
    raise ConfigError(f"config.data.name={data.name!r}: the clients' and the test set's images "
                      f"must have one shape, got {dict(shapes)} (by client)")
  for i, (_, y) in zip(ids, loaded):
    if len(y) and int(np.max(y)) >= num_classes:
      raise ConfigError(f"config.data.name={data.name!r}: client {i} holds label "
                        f"{int(np.max(y))}, beyond the {num_classes} classes of the test split "
                        "and class names")
  train_x = np.concatenate([x for x, _ in loaded])
  train_y = np.concatenate([np.asarray(y, np.int32) for _, y in loaded])
  return train_x, train_y, natural_parts([len(y) for _, y in loaded], ids, data)


def image_clients(config: Any, options: BuildOptions, ds: dict, num_classes: int,
                  test_x: np.ndarray) -> tuple[ClientData, np.ndarray | None]:
  """The clients this process holds (every one, one node's own, or none: the server's
  stand-ins of the sizes the nodes reported) and their label histograms (None on the
  server, which sees no label).

  A dataset with its own clients (``"clients"``, ``data.partition='natural'``) loads
  them one by one (``natural_clients``); the others are partitioned by
  ``data.partition`` from their whole training split. ``test_x``: the test split's
  images (empty on a node without one).
  """
  if options.role == SERVER:
    return size_only_clients(options.client_sizes, test_x[:0]), None
  if "clients" in ds:
    train_x, train_y, parts = natural_clients(config, options, ds["clients"], num_classes,
                                              test_x)
  else:
    train_x, train_y = ds["train"]
    parts = client_parts(train_y, config.data)
    if options.role == NODE:
      parts = [parts[options.partition_id]]
      if len(parts[0]) and int(train_y[parts[0]].max()) >= num_classes:
        raise ConfigError(f"config.data.name={config.data.name!r}: client "
                          f"{options.partition_id} holds label {int(train_y[parts[0]].max())}, "
                          f"beyond the {num_classes} classes of the test split and class names")
  clients = options.clients(client_data(train_x, train_y, parts), num_classes)
  return clients, label_histograms(train_y, parts, num_classes)


def dataset_test_split(config: Any, role: str, ds: dict) -> tuple[np.ndarray, np.ndarray]:
  """The dataset's test split; on a node whose dataset gives none (a dataset with its own
  clients, whose node holds no test folder), an empty one (``build_image_task`` shapes
  it like the node's images).

  Raises:
    ConfigError: a simulation or server without a test split (naming ``data.name``).
  """
  if "test" in ds:
    return ds["test"]
  if role != NODE or "clients" not in ds:
    raise ConfigError(f"config.data.name={config.data.name!r} (config.data.source_dir="
                      f"{config.data.get('source_dir', '')!r}) gives no test split: a "
                      f"{role} needs the test set (client_folders: <source_dir>/test/<class>/)")
  return np.zeros((0,), np.uint8), np.zeros((0,), np.int32)


def build_image_task(config: Any, options: BuildOptions) -> TaskBundle:
  """Loads the dataset, partitions it, builds black box, prompt, label mapping and task.

  Every role (``BuildOptions.role``) derives the set-up from the clients' statistics
  (``setup_statistics.py``): a simulation asks its own clients, a server its nodes; a
  node reads what the server derived from its set-up files.
  """
  ds = DATASETS.get(config.data.name, "data.name")(config.data)
  role, workdir = options.role, options.workdir
  test_x, test_y = dataset_test_split(config, role, ds)
  class_names = ds.get("class_names")
  num_classes = num_image_classes(test_y, class_names,
                                  ds["train"][1] if role == SIMULATION and "train" in ds
                                  else None)
  clients, histograms = image_clients(config, options, ds, num_classes, test_x)
  if not len(test_y):  # a node without the test set: shaped like its own images
    test_x = np.zeros((0,) + tuple(clients.x.shape[2:]), np.asarray(clients.x).dtype)
  split_size = len(test_y)
  test_x, test_y = test_subset(test_x, test_y, config.data.test_examples)
  statistics: dict[str, Any] = {}
  gather = options.gather if role == SERVER else local_gather(statistics, clients)
  m = config.task.mapping_examples_per_client

  blackbox = options.wrap(make_blackbox(config.blackbox, zero_shot_head(config, class_names)))
  prompt_options = image_prompt_options(config.prompt)
  prompt = make_prompt(config.prompt.kind, config.blackbox.input_size, config.task.image_size,
                       **prompt_options)
  cache_files = []
  if config.prompt.kind in CENTRED_PROMPTS:
    uncentred = prompt  # the clients' features are of the uncentred prompt
    encode = jax.jit(lambda x: uncentred.features(place_on_canvas(
        x, config.blackbox.input_size, config.task.image_size, config.task.background)))
    statistics[FEATURE_SUMS] = feature_sums(encode, m)
    center = read_setup_file(workdir, FEATURE_CENTER_FILE)
    if center is None and role != NODE:
      center = mean_feature(gather)
      write_setup_file(workdir, FEATURE_CENTER_FILE, center)
    if center is not None:  # (a node gathering the centre builds the uncentred prompt)
      prompt = make_prompt(config.prompt.kind, config.blackbox.input_size,
                           config.task.image_size, feature_center=center, **prompt_options)
    cache_files.append(FEATURE_CENTER_FILE)
  unmapped = VisualReprogramming(blackbox, prompt, config.task.image_size,
                                 jnp.zeros((blackbox.output_size, num_classes)),
                                 config.task.background, config.task.loss_temperature)
  predict = jax.jit(unmapped.source_logits)
  statistics[LABEL_COUNTS] = label_counts(lambda x: predict(None, x), m,
                                          blackbox.output_size, num_classes)
  like = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype),
                      jax.eval_shape(prompt.init, jax.random.key(0)))
  statistics[REMAP_COUNTS] = remap_counts(predict, like, m, blackbox.output_size, num_classes)
  statistics[REMAP_CORRECT] = remap_correct(m)
  cache = os.path.join(workdir, LABEL_MAP_FILE) if workdir else None
  derive = LABEL_MAPPINGS.get(config.task.label_mapping, "task.label_mapping")
  setup_examples = setup_calls = 0
  if role == NODE:  # the server's mapping; a placeholder while the counts are gathered
    label_map = read_setup_file(workdir, LABEL_MAP_FILE, "label_map")
    if label_map is None:
      label_map = np.zeros((blackbox.output_size, num_classes), np.float32)
  else:
    label_map, setup_examples, setup_calls = cached_label_map(
        cache, lambda: derive(gather, num_classes, config.task, config.data.name,
                              blackbox.output_size))
  if cache:
    cache_files.append(LABEL_MAP_FILE)
  task = dataclasses.replace(unmapped, label_map=jnp.asarray(label_map))
  remap_every = int(config.task.get("remap_every", 0))
  return TaskBundle(task=task, blackbox=blackbox, clients=clients, test_x=test_x,
                    test_y=test_y, init_prompt=prompt.init, label_histograms=histograms,
                    test_split=describe_test_subset(config.data.name, len(test_y), split_size),
                    setup_examples=setup_examples, setup_calls=setup_calls,
                    cache_files=tuple(f for f in cache_files if workdir),
                    statistics=statistics if role != SERVER else {},
                    client_count=int(config.data.num_clients) if role == NODE else 0,
                    refresh_every=remap_every,
                    refresh=make_label_map_refresh(task, gather, config.task, workdir)
                    if remap_every else None)
