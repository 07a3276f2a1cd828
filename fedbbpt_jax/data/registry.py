"""Datasets registered by name, so a user adds one from their own code.

An entry is a loader ``load(data_cfg) -> dataset`` (``data_cfg`` is the config's
``data`` section), tagged with the kind of examples it returns; a task family
accepts the names with its tag (``DATASETS.names("image")``):

* ``"image"``: ``{"train": (images, labels), "test": (images, labels)}``, images
  uint8 ``[n, h, w]`` (grayscale) or ``[n, h, w, 3]``, labels int ``[n]``; a loader may
  add keys the family does not read (the CoOp benchmarks ``coop:<set>`` add ``"val"``
  and ``"class_names"``, ``data/coop_benchmarks.py``);
* ``"image"`` with a **natural partition** (registered with ``natural_partition=True``,
  run with ``data.partition='natural'``): the dataset's clients are its own (e.g. one
  folder each, ``data/client_folders.py``), and each is loaded alone, so a deployment's
  node opens only its own client's data and the server none::

      {"clients": <object with num_clients: int and load(i) -> (images, labels)>,
       "test": (images, labels),   # absent where this party has no test set (a node)
       "class_names": (...)}       # the public schema: required

  and no ``"train"``. ``load(i)`` reads client ``i`` only (images and labels as in
  ``"train"``); ``num_clients`` may list what exists but reads no client's data. The
  loader itself reads only the shared parts (class names, test set): the family asks a
  simulation for every client, in index order, and a node for its own;
* ``"text"``: a ``TextClassificationData`` (texts, labels, class names, its own
  verbalizer template; ``register_text_dataset``);
* ``"glue"``: the GLUE loader (the family reads its own tasks and splits).

Example (a user's code, no library file edited)::

    from fedbbpt_jax.data import register_image_arrays
    register_image_arrays("faces", train=(x_tr, y_tr), test=(x_te, y_te))
    # then: --config.data.name=faces
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np

from fedbbpt_jax.core import Registry
from fedbbpt_jax.data.client_folders import load_client_folders
from fedbbpt_jax.data.coop_benchmarks import COOP_BENCHMARKS, COOP_READS, PREFIX, coop_loader
from fedbbpt_jax.data.digits import load_digits_dataset
from fedbbpt_jax.data.drug_reviews import DEFAULT_MIN_TRAIN_REVIEWS, load_drug_reviews
from fedbbpt_jax.data.fashion_mnist import load_fashion_mnist
from fedbbpt_jax.data.glue import GLUE_TASKS, load_glue
from fedbbpt_jax.data.text_datasets import (DEFAULT_VERBALIZER_TEMPLATE, TextClassificationData,
                                            text_split)

DATASETS: Registry[Callable[[Any], Any]] = Registry("dataset", home="fedbbpt_jax.data.DATASETS")
IMAGE, TEXT, GLUE = "image", "text", "glue"
NATURAL_PARTITION = "natural_partition"  # the tag of a dataset whose clients are its own


def register_dataset(name: str, loader: Callable[[Any], Any], *, kind: str = IMAGE,
                     overwrite: bool = False, reads: dict[str, Any] | None = None,
                     natural_partition: bool = False) -> None:
  """Registers ``loader(data_cfg)`` as dataset ``name`` returning examples of ``kind``.

  ``reads``: the ``data.*`` fields only this dataset reads, with their defaults (e.g.
  the drug reviews' ``data.task``): a run on another dataset refuses them when set.
  ``natural_partition``: the loader returns its clients (``"clients"``, the module
  docstring) and runs with ``data.partition='natural'`` only (the config check); image
  datasets only (the image family is the one that loads clients one by one).
  """
  if natural_partition and kind != IMAGE:
    raise ValueError(f"dataset {name!r}: natural_partition=True needs kind={IMAGE!r} (the "
                     f"family that loads its clients one by one), got kind={kind!r}")
  tags = (kind, NATURAL_PARTITION) if natural_partition else (kind,)
  DATASETS.register(name, loader, tags=tags, overwrite=overwrite, reads=reads)


def has_natural_partition(name: str) -> bool:
  """Whether dataset ``name`` is registered with its own clients (``natural_partition``)."""
  return name in DATASETS and NATURAL_PARTITION in DATASETS.tags(name)


def register_text_dataset(name: str, train: tuple[Sequence[str], Sequence[int]],
                          test: tuple[Sequence[str], Sequence[int]],
                          class_names: Sequence[str], *,
                          verbalizer_template: str = DEFAULT_VERBALIZER_TEMPLATE,
                          overwrite: bool = False) -> None:
  """Registers in-memory texts as text dataset ``name`` (checked now, not at run time).

  ``verbalizer_template`` (one ``{}``) turns a class name into the text the class is
  scored against; a config with ``task.verbalizer_template=''`` uses it.
  """
  names = tuple(str(c) for c in class_names)
  if len(names) < 2 or len(set(names)) != len(names):
    raise ValueError(f"dataset {name!r}: class_names must be at least 2 distinct names, got "
                     f"{list(names)}")
  if verbalizer_template.count("{}") != 1:
    raise ValueError(f"dataset {name!r}: verbalizer_template={verbalizer_template!r} must "
                     "hold one '{}' where the class name goes")
  train_texts, train_labels = text_split(*train, len(names), f"dataset {name!r} train")
  test_texts, test_labels = text_split(*test, len(names), f"dataset {name!r} test")
  data = TextClassificationData(train_texts, train_labels, test_texts, test_labels, names,
                                verbalizer_template)
  register_dataset(name, lambda data_cfg: data, kind=TEXT, overwrite=overwrite)


def _image_split(split: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
  x, y = split
  x, y = np.asarray(x), np.asarray(y)
  if x.dtype != np.uint8 or x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] != 3):
    raise ValueError(f"{where}: images must be uint8 [n, h, w] or [n, h, w, 3], got "
                     f"{x.dtype} {x.shape}")
  if y.shape != x.shape[:1] or not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
    raise ValueError(f"{where}: labels must be non-negative integers [n={len(x)}], got "
                     f"{y.dtype} {y.shape}")
  return x, y.astype(np.int32)


def register_image_arrays(name: str, train: tuple[np.ndarray, np.ndarray],
                          test: tuple[np.ndarray, np.ndarray], *,
                          overwrite: bool = False) -> None:
  """Registers in-memory image arrays as dataset ``name`` (checked now, not at run time)."""
  splits = {"train": _image_split(train, f"dataset {name!r} train"),
            "test": _image_split(test, f"dataset {name!r} test")}
  register_dataset(name, lambda data_cfg: splits, kind=IMAGE, overwrite=overwrite)


def register_tfds_folder(name: str, builder_dir: str, *, image_key: str = "image",
                         label_key: str = "label", splits: tuple[str, str] = ("train", "test"),
                         overwrite: bool = False) -> None:
  """Registers a prepared TFDS dataset folder (``tfds.builder_from_directory``) by name.

  The folder is read offline through TFDS' random-access data source (array_record
  files; never the TFDS catalogue); ``splits`` name its train and test splits.
  """

  def load(data_cfg: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    del data_cfg
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    builder = tfds.builder_from_directory(builder_dir)
    out = {}
    for key, split in zip(("train", "test"), splits):
      source = builder.as_data_source(split=split)
      records = source.__getitems__(range(len(source)))
      images = np.stack([np.asarray(r[image_key]) for r in records])
      if images.ndim == 4 and images.shape[-1] == 1:  # TFDS stores grayscale as [h, w, 1]
        images = images[..., 0]
      labels = np.asarray([r[label_key] for r in records])
      out[key] = _image_split((images, labels), f"dataset {name!r} ({builder_dir}) split "
                                                f"{split!r}")
    return out

  register_dataset(name, load, kind=IMAGE, overwrite=overwrite)


register_dataset("fashion_mnist", lambda cfg: load_fashion_mnist(
    source_dir=cfg.source_dir, data_dir=cfg.get("tfds_dir") or None))
register_dataset("digits", lambda cfg: load_digits_dataset())
register_dataset("client_folders", load_client_folders, natural_partition=True)
for _benchmark in COOP_BENCHMARKS:  # coop:caltech101 ... coop:ucf101 (data/coop_benchmarks.py)
  register_dataset(PREFIX + _benchmark, coop_loader(_benchmark), reads=COOP_READS)
register_dataset("drug_reviews", lambda cfg: load_drug_reviews(
    cfg.task, min_train_reviews=cfg.min_train_reviews), kind=TEXT,
    reads={"data.task": "condition", "data.min_train_reviews": DEFAULT_MIN_TRAIN_REVIEWS})


def glue_test_split(data_cfg: Any) -> str:
  """``data.test_split``, or the task's GLUE validation split when it is ''."""
  return data_cfg.test_split or GLUE_TASKS[data_cfg.task].eval_splits[0]


register_dataset("glue", lambda cfg: load_glue(
    cfg.task, os.path.expanduser(cfg.tfds_dir), splits=("train", glue_test_split(cfg))),
    kind=GLUE)
