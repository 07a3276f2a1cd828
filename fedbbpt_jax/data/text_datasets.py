"""What a text dataset is: texts, integer labels, class names, and its own verbalizer.

Every text dataset (the bundled drug reviews, or a user's, ``register_text_dataset``)
loads into a ``TextClassificationData``. It carries the defaults only it can know: its
class names and the sentence that turns a class name into the text its class is
compared with (``verbalizer_template``, e.g. ``'a review of a drug for {}'``), so a
config needs no field of another dataset.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

DEFAULT_VERBALIZER_TEMPLATE = "{}"  # a dataset that names none: the class name itself


class TextClassificationData(NamedTuple):
  """Texts and integer labels of a text classification task.

  Attributes:
    train_texts, test_texts: the texts.
    train_labels, test_labels: int32 labels indexing ``class_names``.
    class_names: human-readable class names (verbalizer material).
    verbalizer_template: the dataset's own sentence around a class name, with one
      ``{}`` (``config.task.verbalizer_template=''`` uses it).
  """

  train_texts: list[str]
  train_labels: np.ndarray
  test_texts: list[str]
  test_labels: np.ndarray
  class_names: tuple[str, ...]
  verbalizer_template: str = DEFAULT_VERBALIZER_TEMPLATE


def text_split(texts: Sequence[str], labels: Sequence[int], num_classes: int,
               where: str) -> tuple[list[str], np.ndarray]:
  """``(texts, int32 labels)`` of one split, checked.

  Raises:
    ValueError: naming ``where``: texts that are not non-empty strings, labels not
      integers in ``[0, num_classes)``, or counts that differ.
  """
  texts = list(texts)
  y = np.asarray(labels)
  if not all(isinstance(t, str) and t.strip() for t in texts):
    raise ValueError(f"{where}: texts must be non-empty strings")
  if y.shape != (len(texts),) or not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"{where}: labels must be {len(texts)} integers (one per text), got "
                     f"{y.dtype} {y.shape}")
  if len(y) and (y.min() < 0 or y.max() >= num_classes):
    raise ValueError(f"{where}: labels must lie in [0, {num_classes}) (one per class name), "
                     f"got {int(y.min())}..{int(y.max())}")
  return texts, y.astype(np.int32)
