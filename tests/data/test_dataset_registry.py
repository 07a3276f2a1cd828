"""Datasets by name: the built-in entries, and a prepared TFDS folder registered by its path."""

import numpy as np
import pytest

from fedbbpt_jax.data import COOP_BENCHMARKS, DATASETS, register_dataset, register_tfds_folder
from fedbbpt_jax.data import fashion_mnist as fm
from tests.data.test_fashion_mnist import _write_source_dir


def test_the_built_in_datasets_are_registered_with_their_kind():
  coop = tuple(f"coop:{name}" for name in COOP_BENCHMARKS)  # tests/data/test_coop_benchmarks.py
  assert DATASETS.names("image") == ("client_folders", *coop, "digits", "fashion_mnist")
  assert DATASETS.names("natural_partition") == ("client_folders",)
  assert DATASETS.names("text") == ("drug_reviews",)
  assert DATASETS.names("glue") == ("glue",)


def test_a_prepared_tfds_folder_registered_by_path_loads_the_same_arrays(tmp_path):
  source = _write_source_dir(tmp_path / "src", {"train": 30, "test": 12})
  builder = fm.FashionMnistDebian(data_dir=str(tmp_path / "tfds"))
  expected = fm.load_fashion_mnist(str(tmp_path / "src"), data_dir=str(tmp_path / "tfds"))
  register_tfds_folder("my_folder", builder.data_dir)
  try:
    loaded = DATASETS.get("my_folder")(None)
  finally:
    DATASETS.unregister("my_folder")
  for split in ("train", "test"):
    np.testing.assert_array_equal(loaded[split][0], expected[split][0])
    np.testing.assert_array_equal(loaded[split][1], expected[split][1])
    np.testing.assert_array_equal(loaded[split][1], source[split][1])
    assert loaded[split][0].dtype == np.uint8 and loaded[split][0].shape[1:] == (28, 28)


def test_a_name_is_registered_once_unless_overwritten():
  with pytest.raises(ValueError, match="already registered"):
    register_dataset("digits", lambda cfg: None)
