"""What a labelled image source is: per split, labels and a way to fetch encoded images.

A source (a folder in CoOp's layout, a prepared TFDS dataset) is opened once; opening
reads only the labels (and where each image lives). The encoded JPEG/PNG bytes of the
rows a run needs (e.g. a k-shot draw) are fetched later, so a 16-shot set of a large
dataset never reads the rest of its images.

Example:
    >>> source = open_coop_folder("eurosat", "/data")      # a LabelledImages
    >>> split = source.splits["train"]
    >>> split.labels[:3], split.fetch(np.array([0, 1]))    # int64 labels, [bytes, bytes]
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import numpy as np


@dataclasses.dataclass(frozen=True)
class ImageSplit:
  """One split of a labelled image source.

  Attributes:
    labels: int64 labels ``[n]``, each in ``[0, num_classes)``.
    fetch: ``fetch(rows) -> [bytes, ...]``, the encoded images of ``rows`` (int indices
      into ``labels``), in that order; a missing image raises an error naming it.
    identity: ``identity(rows) -> [str, ...]``, a stable name of each row's image (a
      path, a record number), the key of the decoded-image cache.
    where: the split in words, for messages (``"<file> split 'train'"``).
  """

  labels: np.ndarray
  fetch: Callable[[np.ndarray], list[bytes]]
  identity: Callable[[np.ndarray], list[str]]
  where: str

  def __len__(self) -> int:
    return int(self.labels.shape[0])


@dataclasses.dataclass(frozen=True)
class LabelledImages:
  """A labelled image source: ``train`` and ``test`` splits, ``val`` where it has one.

  Attributes:
    name: the source in words (dataset and folder), for messages and cache records.
    splits: ``{'train': ImageSplit, 'test': ImageSplit}`` and, where the source has
      one, ``'val'``.
    class_names: one name per label, in label order.
  """

  name: str
  splits: Mapping[str, ImageSplit]
  class_names: tuple[str, ...]

  @property
  def num_classes(self) -> int:
    return len(self.class_names)


def subset_split(split: ImageSplit, rows: np.ndarray, where: str) -> ImageSplit:
  """The rows ``rows`` of ``split`` as a split of their own (e.g. a carved test split)."""
  rows = np.asarray(rows, np.int64)
  return ImageSplit(labels=split.labels[rows], fetch=lambda r: split.fetch(rows[np.asarray(r)]),
                    identity=lambda r: split.identity(rows[np.asarray(r)]), where=where)
