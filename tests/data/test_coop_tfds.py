"""The benchmarks from a prepared TFDS data_dir: tiny sets written here, read back offline."""

import dataclasses
import os
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from fedbbpt_jax.data.tfds_images import TFDS_LAYOUTS, TfdsLayoutError, carve_test, open_tfds
from tests.helpers.tiny_image_sets import as_tfrecord, image_bytes, tiny_tfds


def _labelled(names):
  return tfds.features.FeaturesDict({"image": tfds.features.Image(encoding_format="png"),
                                     "label": tfds.features.ClassLabel(names=list(names))})


def _examples(rng, labels):
  return [{"image": image_bytes(rng, 12, 10)[0], "label": int(y)} for y in labels]


@pytest.fixture(name="dtd_dir")
def _dtd_dir(tmp_path):
  rng = np.random.default_rng(0)
  splits = {"train": _examples(rng, [0, 1, 2, 1, 0]), "validation": _examples(rng, [2, 1, 0]),
            "test": _examples(rng, [1, 2])}
  return tmp_path, tiny_tfds(tmp_path, "dtd", _labelled(["banded", "blotchy", "braided"]),
                             splits), splits


def test_splits_labels_class_names_and_encoded_images_of_a_prepared_set(dtd_dir):
  data_dir, builder_dir, written = dtd_dir
  images = open_tfds("dtd", str(data_dir))
  assert images.class_names == ("banded", "blotchy", "braided")
  assert sorted(images.splits) == ["test", "train", "val"]
  np.testing.assert_array_equal(images.splits["train"].labels, [0, 1, 2, 1, 0])
  np.testing.assert_array_equal(images.splits["val"].labels, [2, 1, 0])
  np.testing.assert_array_equal(images.splits["test"].labels, [1, 2])
  assert images.splits["val"].fetch(np.array([2, 0])) == [written["validation"][2]["image"],
                                                          written["validation"][0]["image"]]
  assert images.splits["test"].identity([1]) == [f"{builder_dir}:test:1"]
  assert images.splits["val"].where == f"TFDS {builder_dir} split 'validation'"
  # The catalogue's own dtd module was never imported (nothing reached the registry).
  assert "tensorflow_datasets.image_classification.dtd" not in sys.modules


def test_tfrecord_files_read_the_same_records(dtd_dir):
  data_dir, builder_dir, written = dtd_dir
  as_tfrecord(builder_dir)
  assert sorted(f for f in os.listdir(builder_dir) if "tfrecord" in f) == [
      "dtd-test.tfrecord-00000-of-00001", "dtd-train.tfrecord-00000-of-00001",
      "dtd-validation.tfrecord-00000-of-00001"]
  images = open_tfds("dtd", builder_dir)  # the version folder itself
  np.testing.assert_array_equal(images.splits["train"].labels, [0, 1, 2, 1, 0])
  assert images.splits["train"].fetch(np.array([3])) == [written["train"][3]["image"]]


def test_labels_are_cached_once_read(dtd_dir, tmp_path):
  data_dir, _, _ = dtd_dir
  cache = tmp_path / "cache"
  open_tfds("dtd", str(data_dir), cache_dir=str(cache))
  cached = sorted(np.load(cache / f).tolist() for f in os.listdir(cache) if f.endswith(".npy"))
  assert cached == [[0, 1, 2, 1, 0], [1, 2], [2, 1, 0]]


def test_a_set_with_one_split_has_a_fixed_test_split_carved_from_every_class(tmp_path):
  labels = np.repeat(np.arange(3), [10, 7, 4])
  tiny_tfds(tmp_path, "eurosat", _labelled(["AnnualCrop", "Forest", "River"]),
            {"train": _examples(np.random.default_rng(1), labels)}, config="rgb")
  images = open_tfds("eurosat", str(tmp_path))
  train, test = images.splits["train"], images.splits["test"]
  np.testing.assert_array_equal(np.bincount(test.labels), [3, 2, 1])  # round(0.3 * n)
  np.testing.assert_array_equal(np.bincount(train.labels), [7, 5, 3])
  train_rows, test_rows = carve_test(labels)
  assert not set(train_rows) & set(test_rows) and len(train_rows) + len(test_rows) == 21
  assert test.identity([0, 1]) == [train.identity([0])[0].rsplit(":", 1)[0] + f":{r}"
                                   for r in test_rows[:2]]
  assert "val" not in images.splits and test.where.endswith(
      "(the 30% of every class carved out as test, seed 0)")


def test_clevr_is_the_counting_task(tmp_path):
  features = tfds.features.FeaturesDict({
      "image": tfds.features.Image(encoding_format="png"),
      "objects": tfds.features.Sequence({
          "3d_coords": tfds.features.Tensor(shape=(3,), dtype=np.float32),  # 3 values each
          "size": tfds.features.ClassLabel(names=["s", "l"])})})
  rng = np.random.default_rng(2)

  def scenes(counts):
    return [{"image": image_bytes(rng, 8, 8)[0],
             "objects": {"3d_coords": np.zeros((n, 3), np.float32), "size": [0] * n}}
            for n in counts]

  tiny_tfds(tmp_path, "clevr", features, {"train": scenes([3, 10, 5]),
                                          "validation": scenes([4, 3])})
  images = open_tfds("clevr", str(tmp_path))
  assert images.class_names == ("3", "4", "5", "6", "7", "8", "9", "10")
  np.testing.assert_array_equal(images.splits["train"].labels, [0, 7, 2])
  np.testing.assert_array_equal(images.splits["test"].labels, [1, 0])
  tiny_tfds(tmp_path / "bad", "clevr", features, {"train": scenes([3, 2]),
                                                  "validation": scenes([3])})
  with pytest.raises(ValueError, match=r"split 'train' row 1 has 2 objects; the counting task "
                                       r"needs 3..10"):
    open_tfds("clevr", str(tmp_path / "bad"))


def test_missing_dataset_split_or_config_is_named(tmp_path, dtd_dir):
  with pytest.raises(TfdsLayoutError, match=(
      rf"^no prepared TFDS dataset 'oxford_flowers102' under {tmp_path}/empty: expected "
      rf"{tmp_path}/empty/oxford_flowers102/\[<config>/\]<version>/dataset_info.json")):
    open_tfds("oxford_flowers", str(tmp_path / "empty"))
  data_dir, _, _ = dtd_dir
  layout = dataclasses.replace(TFDS_LAYOUTS["dtd"], test="test_set")
  with pytest.raises(TfdsLayoutError, match=r"has no split 'test_set' \(read as test\); it has "
                                            r"\['test', 'train', 'validation'\]"):
    open_tfds("dtd", str(data_dir), layout=layout)
  for config in ("all", "other"):
    tiny_tfds(tmp_path / "multi", "eurosat", _labelled(["a", "b"]),
              {"train": _examples(np.random.default_rng(3), [0, 1])}, config=config)
  with pytest.raises(TfdsLayoutError, match=r"holds the configs \['all', 'other'\]; expected "
                                            r"'rgb'"):
    open_tfds("eurosat", str(tmp_path / "multi"))
