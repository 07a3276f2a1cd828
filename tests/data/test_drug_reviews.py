"""Drug-review loader: split sizes, the 12 conditions, repaired names, sentiment labels."""

import numpy as np

from fedbbpt_jax.data.drug_reviews import load_drug_reviews, read_rows


def test_raw_splits_have_600_and_379_rows():
  rows = read_rows()
  assert len(rows["train"]) == 600 and len(rows["test"]) == 379
  assert not any("&#039;" in r.review or r.review.startswith('"') for r in rows["train"])


def test_condition_task_keeps_12_conditions_with_repaired_names():
  d = load_drug_reviews("condition")
  assert len(d.class_names) == 12
  assert d.class_names[0] == "Birth Control"
  assert "Bipolar Disorder" in d.class_names and "Fibromyalgia" in d.class_names
  assert not {"Bipolar Disorde", "ibromyalgia"} & set(d.class_names)
  assert len(d.train_texts) == len(d.train_labels) == 310
  assert len(d.test_texts) == len(d.test_labels) == 193
  assert np.bincount(d.train_labels, minlength=12).min() >= 10
  # Majority class (Birth Control) is 39.4% of the test reviews (docs/tracks/text.md).
  assert abs(np.mean(d.test_labels == 0) - 0.394) < 1e-3


def test_sentiment_task_uses_the_3_class_rating():
  d = load_drug_reviews("sentiment")
  assert d.class_names == ("negative", "neutral", "positive")
  assert np.bincount(d.train_labels).tolist() == [161, 54, 385]
  assert np.bincount(d.test_labels).tolist() == [95, 36, 248]
