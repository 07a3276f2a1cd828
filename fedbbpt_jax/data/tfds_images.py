"""The BlackVIP benchmarks as TFDS prepares them, read from a prepared data_dir, offline.

Only an already prepared TFDS data directory is read, through
``tfds.builder_from_directory``: the TFDS catalogue, its download and its GCS mirror are
never touched (offline they hang). ``TFDS_LAYOUTS`` names each benchmark's TFDS dataset
and which TFDS splits serve as train, val and test. Records are read raw (array_record
through TFDS' random-access data source, tfrecord through ``data/tfrecord.py``, so
TensorFlow is not needed) and parsed with TFDS' copy of the ``tf.train.Example`` proto;
images stay encoded until a run decodes the rows it uses.

TFDS' splits are not CoOp's: a run on ``tfds_dir`` is CoOp's protocol (k-shot train,
``min(k, 4)``-shot val, whole test) on TFDS' splits. Where TFDS has no test split
(eurosat, resisc45: one ``train`` split) a fixed ``CARVED_TEST_FRACTION`` of every class
(seed ``CARVE_SEED``) becomes the test split and the rest the train split; where it has
no val split, the loader draws val from the train rows outside the k-shot set. Class
names are the builder's label names (CoOp renames some, e.g. EuroSAT's 'AnnualCrop' to
'Annual Crop Land'; these are TFDS' as they are). CLEVR is CoOp/BlackVIP's counting task:
the label is the number of objects (3..10) minus 3, the class names '3'..'10'.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Any, Final

import numpy as np

from fedbbpt_jax.data.decoded_cache import cached_array
from fedbbpt_jax.data.labelled_images import ImageSplit, LabelledImages, subset_split
from fedbbpt_jax.data.tfrecord import TfRecordFiles

COUNT_OBJECTS: Final[str] = "count_objects"  # label = number of objects (CLEVR)
CLEVR_MIN_OBJECTS, CLEVR_MAX_OBJECTS = 3, 10
CARVED_TEST_FRACTION: Final[float] = 0.3
CARVE_SEED: Final[int] = 0
_READ_CHUNK = 1024  # records parsed per step of the label pass


@dataclasses.dataclass(frozen=True)
class TfdsLayout:
  """A benchmark's TFDS dataset and the TFDS splits it reads.

  Attributes:
    dataset: the TFDS dataset name (its folder under the data_dir).
    train: the TFDS split read as train.
    val: the TFDS split read as val (``None``: val is drawn from train).
    test: the TFDS split read as test (``None``: carved from train).
    config: the builder config folder to prefer when the dataset has several.
    label: the label feature, or ``COUNT_OBJECTS`` (count of ``objects/*`` entries).
    image: the image feature (encoded JPEG/PNG).
  """

  dataset: str
  train: str = "train"
  val: str | None = None
  test: str | None = "test"
  config: str = ""
  label: str = "label"
  image: str = "image"


TFDS_LAYOUTS: Final[dict[str, TfdsLayout]] = {
    "caltech101": TfdsLayout("caltech101"),
    "oxford_pets": TfdsLayout("oxford_iiit_pet"),
    "oxford_flowers": TfdsLayout("oxford_flowers102", val="validation"),
    "food101": TfdsLayout("food101", test="validation"),
    "sun397": TfdsLayout("sun397", val="validation", config="tfds"),
    "dtd": TfdsLayout("dtd", val="validation"),
    "svhn": TfdsLayout("svhn_cropped"),
    "eurosat": TfdsLayout("eurosat", test=None, config="rgb"),
    "resisc45": TfdsLayout("resisc45", test=None),
    "clevr": TfdsLayout("clevr", test="validation", label=COUNT_OBJECTS),
    "imagenet": TfdsLayout("imagenet2012", test="validation"),
}


class TfdsLayoutError(FileNotFoundError):
  """A prepared TFDS dataset is missing from the data_dir, or lacks a split or feature."""


def _version_key(path: str) -> tuple[int, ...]:
  try:
    return tuple(int(p) for p in os.path.basename(os.path.dirname(path)).split("."))
  except ValueError:
    return (-1,)


def find_builder_dir(tfds_dir: str, layout: TfdsLayout) -> str:
  """The prepared dataset's folder ``<tfds_dir>/<dataset>[/<config>]/<version>``.

  ``tfds_dir`` may also be that folder itself (it holds ``dataset_info.json``). Of
  several configs, ``layout.config`` is taken; of several versions, the highest.

  Raises:
    TfdsLayoutError: naming the folder searched and what it must hold.
  """
  tfds_dir = os.path.abspath(os.path.expanduser(tfds_dir))
  if os.path.isfile(os.path.join(tfds_dir, "dataset_info.json")):
    return tfds_dir
  base = os.path.join(tfds_dir, layout.dataset)
  found = (glob.glob(os.path.join(glob.escape(base), "*", "dataset_info.json"))
           + glob.glob(os.path.join(glob.escape(base), "*", "*", "dataset_info.json")))
  if not found:
    raise TfdsLayoutError(f"no prepared TFDS dataset {layout.dataset!r} under {tfds_dir}: "
                          f"expected {base}/[<config>/]<version>/dataset_info.json (prepare "
                          f"it with `tfds build {layout.dataset} --data_dir={tfds_dir}` "
                          "where a network is available, then copy the folder here)")
  configs = {os.path.relpath(p, base).split(os.sep)[0] for p in found if
             len(os.path.relpath(p, base).split(os.sep)) == 3}
  if len(configs) > 1:
    if layout.config not in configs:
      raise TfdsLayoutError(f"{base} holds the configs {sorted(configs)}; expected "
                            f"{layout.config!r} (or point data.tfds_dir at one version folder)")
    found = [p for p in found if os.path.relpath(p, base).split(os.sep)[0] == layout.config]
  return os.path.dirname(max(found, key=_version_key))


def _example(record: bytes) -> Any:
  from tensorflow_datasets.proto import tf_example_pb2  # pylint: disable=g-import-not-at-top
  return tf_example_pb2.Example.FromString(record).features.feature


def _values(feature: Any) -> Any:
  kind = feature.WhichOneof("kind")
  return getattr(feature, kind).value if kind else ()


class _Records:
  """Raw records of one TFDS split, by index (array_record or tfrecord files)."""

  def __init__(self, builder: Any, split: str):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    file_format = str(getattr(builder.info.file_format, "value", builder.info.file_format))
    if file_format == "array_record":
      self._source = builder.as_data_source(
          split=split, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)
      self._get = lambda rows: list(self._source.__getitems__([int(r) for r in rows]))
      self._size = len(self._source)
    elif file_format == "tfrecord":
      files = TfRecordFiles(builder.info.splits[split].filepaths)
      self._get, self._size = files.get, len(files)
    else:
      raise TfdsLayoutError(f"{builder.data_dir}: file format {file_format!r} is not read; "
                            "prepare the dataset as array_record or tfrecord")

  def __len__(self) -> int:
    return self._size

  def get(self, rows: np.ndarray) -> list[bytes]:
    return self._get(np.asarray(rows, np.int64))


def _label_of(layout: TfdsLayout, where: str):
  """``example features -> int label`` for ``layout``."""
  if layout.label == COUNT_OBJECTS:
    def count(feature: Any, row: int) -> int:
      # Every per-object feature holds one or more values per object (3d_coords three):
      # the shortest holds one each.
      n = min((len(_values(feature[k])) for k in feature.keys() if k.startswith("objects/")),
              default=0)
      if not CLEVR_MIN_OBJECTS <= n <= CLEVR_MAX_OBJECTS:
        raise ValueError(f"{where} row {row} has {n} objects; the counting task needs "
                         f"{CLEVR_MIN_OBJECTS}..{CLEVR_MAX_OBJECTS}")
      return n - CLEVR_MIN_OBJECTS
    return count

  def label(feature: Any, row: int) -> int:
    if layout.label not in feature:
      raise TfdsLayoutError(f"{where} row {row} has no feature {layout.label!r} (it has "
                            f"{sorted(feature.keys())})")
    return int(_values(feature[layout.label])[0])
  return label


def _split(builder: Any, split: str, layout: TfdsLayout, cache_dir: str | None) -> ImageSplit:
  where = f"TFDS {builder.data_dir} split {split!r}"
  records = _Records(builder, split)
  label_of = _label_of(layout, where)

  def read_labels(out: np.ndarray) -> None:
    for start in range(0, len(records), _READ_CHUNK):
      rows = np.arange(start, min(start + _READ_CHUNK, len(records)))
      for r, record in zip(rows, records.get(rows)):
        out[r] = label_of(_example(record), int(r))

  labels = cached_array(cache_dir, [f"tfds-labels:{builder.data_dir}", split, layout.label],
                        (len(records),), np.int64, read_labels,
                        describe={"labels of": where})

  def fetch(rows: np.ndarray) -> list[bytes]:
    out = []
    for r, record in zip(np.asarray(rows), records.get(rows)):
      feature = _example(record)
      if layout.image not in feature:
        raise TfdsLayoutError(f"{where} row {int(r)} has no feature {layout.image!r}")
      out.append(bytes(_values(feature[layout.image])[0]))
    return out

  return ImageSplit(labels=np.asarray(labels), fetch=fetch,
                    identity=lambda rows: [f"{builder.data_dir}:{split}:{int(r)}" for r in rows],
                    where=where)


def _class_names(builder: Any, layout: TfdsLayout) -> tuple[str, ...]:
  if layout.label == COUNT_OBJECTS:
    return tuple(str(n) for n in range(CLEVR_MIN_OBJECTS, CLEVR_MAX_OBJECTS + 1))
  features = builder.info.features
  if layout.label not in features or not hasattr(features[layout.label], "names"):
    raise TfdsLayoutError(f"{builder.data_dir}: feature {layout.label!r} is not a ClassLabel "
                          f"(features: {sorted(features.keys())})")
  return tuple(features[layout.label].names)


def carve_test(labels: np.ndarray, fraction: float = CARVED_TEST_FRACTION,
               seed: int = CARVE_SEED) -> tuple[np.ndarray, np.ndarray]:
  """``(train_rows, test_rows)``: ``round(fraction * n_c)`` rows of every class to test.

  A fixed split of a dataset that ships one split; sorted, disjoint, covering all rows.
  """
  labels = np.asarray(labels, np.int64)
  rng = np.random.default_rng(seed)
  test = [np.empty((0,), np.int64)]
  for c in np.unique(labels):
    rows = rng.permutation(np.flatnonzero(labels == c))
    test.append(rows[:int(round(fraction * rows.size))])
  test_rows = np.sort(np.concatenate(test))
  return np.setdiff1d(np.arange(labels.size), test_rows), test_rows


def open_tfds(name: str, tfds_dir: str, cache_dir: str | None = None,
              layout: TfdsLayout | None = None) -> LabelledImages:
  """Opens benchmark ``name`` from a prepared TFDS data_dir (labels only; no image decoded).

  Args:
    name: a key of ``TFDS_LAYOUTS`` (or any name, with ``layout``).
    tfds_dir: the TFDS data_dir (or the prepared dataset's version folder).
    cache_dir: where the label columns are cached (a label pass parses every record
      once); ``None``: not cached.
    layout: overrides ``TFDS_LAYOUTS[name]``.

  Raises:
    TfdsLayoutError: no prepared dataset, a missing split (the available ones listed)
      or a label feature that is not a class label.
  """
  if layout is None:
    if name not in TFDS_LAYOUTS:
      raise KeyError(f"no TFDS layout for {name!r}; known: {sorted(TFDS_LAYOUTS)} (or pass "
                     "layout=TfdsLayout(...))")
    layout = TFDS_LAYOUTS[name]
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = tfds.builder_from_directory(find_builder_dir(tfds_dir, layout))
  available = sorted(builder.info.splits.keys())
  wanted = {"train": layout.train, "val": layout.val, "test": layout.test}
  for key, split in wanted.items():
    if split is not None and split not in available:
      raise TfdsLayoutError(f"{builder.data_dir} has no split {split!r} (read as {key}); it "
                            f"has {available}")
  splits = {key: _split(builder, split, layout, cache_dir)
            for key, split in wanted.items() if split is not None}
  if layout.test is None:
    train = splits["train"]
    train_rows, test_rows = carve_test(train.labels)
    carved = f"{CARVED_TEST_FRACTION:.0%} of every class carved out as test, seed {CARVE_SEED}"
    splits["train"] = subset_split(train, train_rows, f"{train.where} (less the {carved})")
    splits["test"] = subset_split(train, test_rows, f"{train.where} (the {carved})")
  class_names = _class_names(builder, layout)
  for key, split in splits.items():
    if len(split) and split.labels.max() >= len(class_names):
      raise TfdsLayoutError(f"{split.where}: label {int(split.labels.max())} is out of range "
                            f"for the {len(class_names)} class names")
  return LabelledImages(f"{name} (TFDS {builder.data_dir})", splits, class_names)
