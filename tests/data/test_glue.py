"""GLUE loader on a tiny GLUE-shaped array_record dataset built in the test (offline)."""

import json
import os

import numpy as np
import pytest

from fedbbpt_jax.data.glue import GLUE_TASKS, GlueDataError, load_glue
from tests.helpers.glue_roberta import prepare_glue

SST2 = {
    "train": [("a gorgeous , witty film", 1), ("dull and lifeless", 0), ("unicode: café ✓", 1)],
    "validation": [("it 's a charming journey", 1)],
    "test": [("no label here", -1)],
}
MNLI = {
    "train": [(("A man eats.", "Someone eats."), 0), (("A dog runs.", "A cat sleeps."), 2),
              (("Kids play.", "Kids play outside."), 1)],
    "validation_matched": [(("It rains.", "It is wet."), 0)],
    "validation_mismatched": [(("He sings.", "He is silent."), 2)],
}
DATA = {"sst2": SST2, "mnli": MNLI}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return prepare_glue(tmp_path_factory.mktemp("tfds"), DATA)


def _expected(rows):
  return [(t,) if isinstance(t, str) else t for t, _ in rows], [label for _, label in rows]


def test_sst2_exact_texts_labels_and_verbalizers(data_dir):
  data = load_glue("sst2", data_dir)
  assert sorted(data.splits) == ["test", "train", "validation"]
  for split, rows in SST2.items():
    texts, labels = _expected(rows)
    assert data.splits[split].texts == texts
    np.testing.assert_array_equal(data.splits[split].labels, np.asarray(labels, np.int32))
    assert data.splits[split].labels.dtype == np.int32
  assert data.label_names == ("negative", "positive")
  assert data.verbalizers == ("terrible", "great")
  assert data.task.render(("Nice.",)) == "Nice. It was <mask>."


def test_mnli_pairs_and_selected_splits(data_dir):
  data = load_glue("mnli", data_dir, splits=["train", "validation_mismatched"])
  assert sorted(data.splits) == ["train", "validation_mismatched"]
  texts, labels = _expected(MNLI["train"])
  assert data.splits["train"].texts == texts
  np.testing.assert_array_equal(data.splits["train"].labels, labels)
  assert data.splits["validation_mismatched"].texts == [("He sings.", "He is silent.")]
  assert data.verbalizers == ("no", "maybe", "yes")
  assert data.task.eval_splits == ("validation_matched", "validation_mismatched")
  assert data.task.render(("P.", "H.")) == "P. entailment? <mask>. H."


def test_all_seven_tasks_and_bdpl_verbalizers():
  assert sorted(GLUE_TASKS) == ["cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2"]
  for task in GLUE_TASKS.values():
    assert len(task.verbalizers) == len(task.label_names)
  assert GLUE_TASKS["rte"].verbalizers == ("yes", "no")
  assert GLUE_TASKS["qqp"].render(("a", "b")) == "a? <mask>, b"


def test_missing_data_names_the_directory(tmp_path):
  with pytest.raises(GlueDataError, match=str(tmp_path / "glue" / "rte")):
    load_glue("rte", tmp_path)
  with pytest.raises(GlueDataError, match="unknown GLUE task 'wnli'"):
    load_glue("wnli", tmp_path)


def test_missing_split_and_tfrecord_are_reported(data_dir, tmp_path):
  with pytest.raises(GlueDataError, match="split 'validation' not found"):
    load_glue("mnli", data_dir, splits=["validation"])
  # A catalogue-style tfrecord preparation: same files, declared tfrecord.
  src = os.path.join(data_dir, "glue", "sst2", "2.0.0")
  dst = tmp_path / "glue" / "sst2" / "2.0.0"
  dst.mkdir(parents=True)
  for f in os.listdir(src):
    text = open(os.path.join(src, f), "rb").read()
    if f == "dataset_info.json":
      info = json.loads(text)
      info["fileFormat"] = "tfrecord"
      text = json.dumps(info).encode()
    (dst / f).write_bytes(text)
  with pytest.raises(GlueDataError,
                     match=r"dataset_info.json: file format 'tfrecord'.*array_record"):
    load_glue("sst2", tmp_path)
