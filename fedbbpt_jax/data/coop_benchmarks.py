"""The BlackVIP/CoOp image benchmarks as registered datasets: ``data.name='coop:<set>'``.

A run names a benchmark (``COOP_BENCHMARKS``: caltech101, oxford_pets, stanford_cars,
oxford_flowers, food101, fgvc_aircraft, sun397, dtd, svhn, eurosat, resisc45, clevr,
ucf101, imagenet) and where its images are, one of:

* ``data.root``: CoOp's ``DATASET.ROOT``, the folder holding the datasets in the layout
  CoOp/BlackVIP distribute (``data/coop_folders.py``), with their splits;
* ``data.tfds_dir``: a prepared TFDS data_dir (``data/tfds_images.py``: every benchmark
  but stanford_cars, fgvc_aircraft and ucf101), with TFDS' splits.

The loader applies CoOp's few-shot protocol (``data/coop_few_shot.py``): ``data.shots``
images of every class from the train split (``0``: all), ``min(shots, 4)`` per class as
val (from the val split, or from the train rows outside the k-shot set where the source
has none: ImageNet, several TFDS sets), the whole test split, drawn with
``data.shots_seed``. Only those images are decoded
(``data/image_decoding.py``: CLIP's bicubic resize of the shorter side to
``data.image_size`` and centre crop), once: the decoded arrays are cached as ``.npy``
files under ``data.cache_dir`` ('' = ``$FEDBBPT_DATA_DIR/decoded`` or
``~/.cache/fedbbpt_jax/decoded``) and memory-mapped by later runs.

It returns the image family's dataset (``data/registry.py``) and two more keys the
family does not read::

    {"train": (uint8 [n, s, s, 3], int32 [n]),   # the k-shot set (clients split it)
     "test": (uint8 [m, s, s, 3], int32 [m]),    # the whole test split
     "val": (uint8 [v, s, s, 3], int32 [v]),     # min(k, 4) per class
     "class_names": ("name of label 0", ...)}

The image family partitions ``train`` among ``data.num_clients`` clients with
``data.partition``, so each client holds about ``shots / num_clients`` images per class.

Example::

    --config.data.name=coop:eurosat --config.data.root=/data --config.data.shots=16

A class with fewer train (or val) images than the draw needs is refused, naming it
(CoOp would keep all it has: ``load_few_shot(..., allow_fewer=True)``).
"""

from __future__ import annotations

from typing import Any, Callable, Final

import numpy as np

from fedbbpt_jax.core import ConfigError, check_number, check_string
from fedbbpt_jax.data.coop_few_shot import coop_few_shot
from fedbbpt_jax.data.coop_folders import COOP_LAYOUTS, open_coop_folder
from fedbbpt_jax.data.decoded_cache import cached_array, default_cache_dir
from fedbbpt_jax.data.image_decoding import decode_rows
from fedbbpt_jax.data.labelled_images import ImageSplit, LabelledImages
from fedbbpt_jax.data.tfds_images import TFDS_LAYOUTS, open_tfds

PREFIX: Final[str] = "coop:"
COOP_BENCHMARKS: Final[tuple[str, ...]] = tuple(sorted(set(COOP_LAYOUTS) | set(TFDS_LAYOUTS)))
PREPROCESSING: Final[str] = "clip_resize_crop bicubic v1"  # part of every cache key
# The data.* fields only these datasets read, with their defaults (``register_dataset``).
COOP_READS: Final[dict[str, Any]] = {"data.root": "", "data.shots": 16, "data.shots_seed": 1,
                                     "data.image_size": 224, "data.cache_dir": ""}


def open_benchmark(name: str, *, root: str = "", tfds_dir: str = "",
                   cache_dir: str | None = None) -> LabelledImages:
  """Benchmark ``name``'s labelled images from CoOp's folders (``root``) or TFDS (``tfds_dir``).

  Raises:
    ValueError: neither or both of ``root`` and ``tfds_dir``, or a source the benchmark
      has no reader for.
  """
  if bool(root) == bool(tfds_dir):
    raise ValueError(f"benchmark {name!r}: give exactly one of root (CoOp's folders) and "
                     f"tfds_dir (a prepared TFDS data_dir), got root={root!r}, "
                     f"tfds_dir={tfds_dir!r}")
  if root:
    if name not in COOP_LAYOUTS:
      raise ValueError(f"benchmark {name!r} has no CoOp folder layout; those that do: "
                       f"{sorted(COOP_LAYOUTS)}")
    return open_coop_folder(name, root)
  if name not in TFDS_LAYOUTS:
    raise ValueError(f"benchmark {name!r} has no TFDS reader; read it from CoOp's folders "
                     f"(data.root) instead. TFDS readers: {sorted(TFDS_LAYOUTS)}")
  return open_tfds(name, tfds_dir, cache_dir)


def decode_split(split: ImageSplit, rows: np.ndarray, image_size: int,
                 cache_dir: str | None, workers: int | None = None) -> np.ndarray:
  """uint8 ``[len(rows), s, s, 3]``: ``rows`` of ``split`` decoded, from the cache if there."""
  rows = np.asarray(rows, np.int64)
  identity = [PREPROCESSING, f"size={image_size}", *split.identity(rows)]

  def build(out: np.ndarray) -> None:
    decode_rows(split.fetch, rows, image_size, out, workers=workers,
                describe=lambda r: f"{split.identity([r])[0]} ({split.where})")

  return cached_array(cache_dir, identity, (rows.size, image_size, image_size, 3), np.uint8,
                      build, describe={"images of": split.where, "rows": int(rows.size),
                                       "image_size": image_size, "preprocessing": PREPROCESSING})


def load_few_shot(images: LabelledImages, *, shots: int, seed: int, image_size: int,
                  cache_dir: str | None = None, allow_fewer: bool = False,
                  workers: int | None = None) -> dict[str, Any]:
  """CoOp's few-shot dataset of ``images``, decoded (the module docstring's dict).

  Args:
    images: an opened source (``open_benchmark``).
    shots: images per class in train (0: all train and val images).
    seed: seed of the draws.
    image_size: side of the decoded images.
    cache_dir: the decoded-image cache (``None``: decode in memory, no cache).
    allow_fewer: a class with fewer images than the draw needs gives all it has
      (CoOp's behaviour) instead of an error naming it.
    workers: decoding threads.
  """
  train, test = images.splits["train"], images.splits["test"]
  val = images.splits.get("val")
  draw = coop_few_shot(train.labels, shots, seed, images.num_classes,
                       val_labels=None if val is None else val.labels,
                       class_names=images.class_names, allow_fewer=allow_fewer,
                       where=train.where, val_where=val.where if val is not None else "")
  val_split = train if draw.val_from_train else val

  def arrays(split: ImageSplit, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (decode_split(split, rows, image_size, cache_dir, workers),
            split.labels[rows].astype(np.int32))

  return {"train": arrays(train, draw.train), "val": arrays(val_split, draw.val),
          "test": arrays(test, np.arange(len(test))), "class_names": images.class_names}


def _settings(data_cfg: Any) -> dict[str, Any]:
  """The coop fields of ``data_cfg`` (defaults where absent), checked."""
  data = {field.split(".")[1]: data_cfg.get(field.split(".")[1], default)
          for field, default in COOP_READS.items()}
  data["tfds_dir"] = data_cfg.get("tfds_dir", "")
  config = {"data": data}
  for field in ("root", "tfds_dir", "cache_dir"):
    check_string(config, f"data.{field}", hint="a folder path, or ''")
  check_number(config, "data.shots", low=0, integer=True, hint="images per class; 0 = all")
  check_number(config, "data.shots_seed", low=0, integer=True)
  check_number(config, "data.image_size", low=1, integer=True)
  return data


def load_coop_benchmark(name: str, data_cfg: Any) -> dict[str, Any]:
  """The registered loader of ``coop:<name>``: reads ``COOP_READS`` and ``data.tfds_dir``.

  Raises:
    ConfigError: a field out of range, or not exactly one of ``data.root`` and
      ``data.tfds_dir`` set (the message says what each holds).
  """
  data = _settings(data_cfg)
  if bool(data["root"]) == bool(data["tfds_dir"]):
    state = "both are set" if data["root"] else "both are empty"
    raise ConfigError(f"config.data.name={PREFIX + name!r} reads its images from "
                      "config.data.root (CoOp's DATASET.ROOT, the datasets in CoOp's folder "
                      "layout) or config.data.tfds_dir (a prepared TFDS data_dir): set one "
                      f"({state})")
  if data["tfds_dir"] and name not in TFDS_LAYOUTS:
    raise ConfigError(f"config.data.name={PREFIX + name!r} has no TFDS reader: set "
                      "config.data.root to CoOp's folders instead of config.data.tfds_dir")
  cache_dir = data["cache_dir"] or default_cache_dir()
  images = open_benchmark(name, root=data["root"], tfds_dir=data["tfds_dir"],
                          cache_dir=cache_dir)
  return load_few_shot(images, shots=data["shots"], seed=data["shots_seed"],
                       image_size=data["image_size"], cache_dir=cache_dir)


def coop_loader(name: str) -> Callable[[Any], dict[str, Any]]:
  """The ``DATASETS`` loader of ``coop:<name>``."""
  return lambda data_cfg: load_coop_benchmark(name, data_cfg)
