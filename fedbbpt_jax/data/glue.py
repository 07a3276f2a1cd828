"""GLUE tasks read offline from prepared TFDS data (``glue/<config>``), no TensorFlow.

The loader only opens a local directory: ``<data_dir>/glue/<config>/<version>/``
as written by TFDS' ``glue`` builder (``dataset_info.json``, ``features.json``
and one file set per split). It never touches the TFDS catalogue or the network.

Without TensorFlow only the ``array_record`` file format can be read (random
access through ``as_data_source``). The catalogue's GLUE is prepared as
``tfrecord`` by default; such a directory is rejected with a
``GlueDataError`` naming the directory and the format. Convert it once on a
machine with TensorFlow (``tfds convert_format --dataset_version_dir=<dir>
--out_file_format=array_record``) or prepare it with
``file_format='array_record'``.

Templates and verbalizers follow BDPL (``TEMPLATE_CONFIG``/``LABEL2ID_CONFIG``,
docs/algorithms.md, "BDPL"); verbalizer ``i`` belongs to label ``i`` of
the TFDS label order. Note (a BDPL quirk kept for parity): MNLI labels are
entailment/neutral/contradiction, so its verbalizers no/maybe/yes put "no" on
entailment; QNLI/RTE put "yes" on entailment (label 0).

Example:
  >>> data = load_glue("sst2", data_dir="/data/tfds")
  >>> data.splits["train"].texts[0], data.splits["train"].labels[0]
  (('hide new secretions from the parental units',), 0)
  >>> data.task.verbalizers
  ('terrible', 'great')
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.proto import tf_example_pb2

MASK: Final[str] = "<mask>"


class GlueDataError(ValueError):
  """Prepared GLUE data are missing, unreadable without TensorFlow, or malformed."""


class GlueTask(NamedTuple):
  """Static description of one GLUE task.

  Attributes:
    name: TFDS config name (``sst2``, ``mnli`` ...).
    text_keys: feature names of the one or two input texts.
    label_names: TFDS ``ClassLabel`` names, in label order.
    verbalizers: one word per label (BDPL ``LABEL2ID_CONFIG``); scored with a
      leading space (one BPE token each for RoBERTa).
    template: BDPL template with ``{s1}``, ``{s2}`` and ``<mask>``.
    metric: BDPL's test metric: ``accuracy``, ``f1`` or ``matthews``.
    eval_splits: splits with labels used for evaluation (GLUE validation).
  """

  name: str
  text_keys: tuple[str, ...]
  label_names: tuple[str, ...]
  verbalizers: tuple[str, ...]
  template: str
  metric: str
  eval_splits: tuple[str, ...] = ("validation",)

  def render(self, texts: Sequence[str]) -> str:
    """Fills the template with one example's texts (no ``<s>``/``</s>``)."""
    if len(texts) != len(self.text_keys):
      raise ValueError(f"{self.name} takes {len(self.text_keys)} texts, got {len(texts)}")
    fields = {f"s{i + 1}": t for i, t in enumerate(texts)}
    return self.template.format(**fields)


_NLI_TEMPLATE = "{s1} entailment? " + MASK + ". {s2}"
_PAIR_TEMPLATE = "{s1}? " + MASK + ", {s2}"

GLUE_TASKS: Final[dict[str, GlueTask]] = {
    "sst2": GlueTask("sst2", ("sentence",), ("negative", "positive"),
                     ("terrible", "great"), "{s1} It was " + MASK + ".", "accuracy"),
    "cola": GlueTask("cola", ("sentence",), ("unacceptable", "acceptable"),
                     ("no", "yes"), "{s1} correct? " + MASK + ".", "matthews"),
    "mrpc": GlueTask("mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"),
                     ("no", "yes"), _PAIR_TEMPLATE, "f1"),
    "qqp": GlueTask("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"),
                    ("no", "yes"), _PAIR_TEMPLATE, "f1"),
    "mnli": GlueTask("mnli", ("premise", "hypothesis"),
                     ("entailment", "neutral", "contradiction"), ("no", "maybe", "yes"),
                     _NLI_TEMPLATE, "accuracy", ("validation_matched", "validation_mismatched")),
    "qnli": GlueTask("qnli", ("question", "sentence"), ("entailment", "not_entailment"),
                     ("yes", "no"), _NLI_TEMPLATE, "accuracy"),
    "rte": GlueTask("rte", ("sentence1", "sentence2"), ("entailment", "not_entailment"),
                    ("yes", "no"), _NLI_TEMPLATE, "accuracy"),
}


class GlueSplit(NamedTuple):
  """One split: ``texts[i]`` is a tuple of 1 or 2 strings, ``labels`` int32 (-1 = unlabeled)."""

  texts: list[tuple[str, ...]]
  labels: np.ndarray


class GlueData(NamedTuple):
  """A loaded GLUE task: its description and every split found on disk."""

  task: GlueTask
  splits: dict[str, GlueSplit]

  @property
  def label_names(self) -> tuple[str, ...]:
    return self.task.label_names

  @property
  def verbalizers(self) -> tuple[str, ...]:
    return self.task.verbalizers


def glue_task(name: str) -> GlueTask:
  """Returns the task ``name`` or raises naming the supported tasks."""
  if name not in GLUE_TASKS:
    raise GlueDataError(f"unknown GLUE task {name!r}; choose one of {sorted(GLUE_TASKS)}")
  return GLUE_TASKS[name]


def _version_dir(data_dir: str, name: str) -> str:
  """Returns ``<data_dir>/glue/<name>/<newest version>`` or raises naming it."""
  config_dir = os.path.join(data_dir, "glue", name)
  versions = []
  if os.path.isdir(config_dir):
    for entry in os.listdir(config_dir):
      try:
        versions.append((tfds.core.Version(entry), entry))
      except ValueError:
        continue
  versions = [v for v in versions
              if os.path.isfile(os.path.join(config_dir, v[1], "dataset_info.json"))]
  if not versions:
    raise GlueDataError(
        f"no prepared GLUE data for {name!r}: expected {config_dir}/<version>/dataset_info.json "
        f"(TFDS 'glue/{name}' prepared with file_format='array_record' under data_dir={data_dir})")
  return os.path.join(config_dir, max(versions)[1])


def _records(source: Any, start: int, stop: int) -> list[Any]:
  if hasattr(source, "__getitems__"):
    return list(source.__getitems__(range(start, stop)))
  return [source[i] for i in range(start, stop)]


def _read_split(source: Any, task: GlueTask, batch: int = 10_000) -> GlueSplit:
  """Parses raw ``tf.train.Example`` records (TFDS' proto copy, no TensorFlow)."""
  texts: list[tuple[str, ...]] = []
  labels = np.empty((len(source),), np.int32)
  for start in range(0, len(source), batch):
    stop = min(start + batch, len(source))
    for i, record in enumerate(_records(source, start, stop), start):
      feature = tf_example_pb2.Example.FromString(record).features.feature
      texts.append(tuple(feature[k].bytes_list.value[0].decode("utf-8")
                         for k in task.text_keys))
      labels[i] = feature["label"].int64_list.value[0]
  return GlueSplit(texts, labels)


def load_glue(name: str, data_dir: str | os.PathLike[str],
              splits: Sequence[str] | None = None) -> GlueData:
  """Loads a GLUE task from prepared ``array_record`` TFDS data in ``data_dir``.

  Args:
    name: one of ``GLUE_TASKS`` (sst2, mrpc, rte, qnli, mnli, qqp, cola).
    data_dir: TFDS data directory holding ``glue/<name>/<version>/``.
    splits: split names to read; default every split on disk.

  Returns:
    ``GlueData`` with texts, labels (int32; -1 for GLUE's unlabeled test sets),
    label names and the task's verbalizers and template.

  Raises:
    GlueDataError: naming the directory when data are missing, the format when
      it is not array_record, or the feature when the data do not look like GLUE.
  """
  task = glue_task(name)
  data_dir = os.path.expanduser(os.fspath(data_dir))
  path = _version_dir(data_dir, name)
  builder = tfds.builder_from_directory(path)
  file_format = str(getattr(builder.info.file_format, "value", builder.info.file_format))
  if file_format != "array_record":
    raise GlueDataError(
        f"{path}/dataset_info.json: file format {file_format!r} cannot be read without "
        "TensorFlow; only 'array_record' is supported. Convert it once where TensorFlow is "
        f"installed: `tfds convert_format --dataset_version_dir={path} "
        "--out_file_format=array_record`")
  features = builder.info.features
  for key in (*task.text_keys, "label"):
    if key not in features:
      raise GlueDataError(f"{path}: feature {key!r} of glue/{name} is missing "
                          f"(found {sorted(features.keys())})")
  found = tuple(features["label"].names)
  if found != task.label_names:
    raise GlueDataError(f"{path}: label names {found} differ from glue/{name}'s "
                        f"{task.label_names}")
  available = sorted(builder.info.splits.keys())
  wanted = list(splits) if splits is not None else available
  for split in wanted:
    if split not in available:
      raise GlueDataError(f"{path}: split {split!r} not found; available: {available}")
  sources = builder.as_data_source(deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)
  return GlueData(task, {s: _read_split(sources[s], task) for s in wanted})
