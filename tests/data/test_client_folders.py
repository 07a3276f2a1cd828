"""The ``client_folders`` dataset (``data/client_folders.py``): each folder's images in
label-then-name order, one client read without the others, and errors naming the file
or folder at fault."""

import os
import shutil

import ml_collections
import numpy as np
import pytest
from PIL import Image

from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.data import (DATASETS, ClientFoldersError, has_natural_partition,
                              local_test_parts, natural_parts, register_dataset)
from tests.helpers.client_folders import CLASS_NAMES, record_paths, write_classes, write_layout


def data_cfg(root):
  return ml_collections.ConfigDict({"source_dir": str(root)})


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
  root = tmp_path_factory.mktemp("folders")
  return root, write_layout(str(root))


def load(root):
  return DATASETS.get("client_folders")(data_cfg(root))


def test_the_loader_reads_the_shared_parts_and_each_client_alone(layout, monkeypatch):
  root, written = layout
  assert has_natural_partition("client_folders") and not has_natural_partition("digits")
  seen = record_paths(monkeypatch, root)
  ds = load(root)
  assert set(ds) == {"clients", "class_names", "test"}  # no "train"
  assert ds["class_names"] == CLASS_NAMES
  np.testing.assert_array_equal(ds["test"][0], written["test"][0])
  np.testing.assert_array_equal(ds["test"][1], written["test"][1])
  assert ds["test"][0].shape == (60, 8, 8) and ds["test"][1].dtype == np.int32
  assert not any(p.startswith("client_") for p in seen)  # loading opened no client
  assert ds["clients"].num_clients == 3
  assert not any(p.startswith("client_") for p in seen)  # counting them neither
  x, y = ds["clients"].load(1)
  np.testing.assert_array_equal(x, written["clients"][1][0])
  np.testing.assert_array_equal(y, written["clients"][1][1])
  touched = {p.split(os.sep)[0] for p in seen}
  assert touched == {".", "classes.txt", "test", "client_1"}
  assert sum(p.endswith(".png") and p.startswith("client_1") for p in seen) == 30


def test_only_an_image_dataset_may_have_a_natural_partition():
  with pytest.raises(ValueError, match="dataset 'mine': natural_partition=True needs "
                     "kind='image' .* got kind='text'"):
    register_dataset("mine", lambda cfg: None, kind="text", natural_partition=True)
  assert "mine" not in DATASETS


def test_a_missing_classes_file_is_named(tmp_path):
  (tmp_path / "test").mkdir()
  with pytest.raises(ClientFoldersError, match=f"no file {tmp_path}/classes.txt: the "
                     "client_folders layout needs the class names there"):
    load(tmp_path)


def test_a_class_folder_classes_txt_does_not_name_is_named(layout, tmp_path):
  root, _ = layout
  shutil.copytree(root / "client_0", tmp_path / "client_0")
  write_classes(str(tmp_path), CLASS_NAMES[:9])  # drops digit_9
  with pytest.raises(ClientFoldersError, match=(
      f"{tmp_path}/client_0 holds class folders \\['digit_9'\\] that classes.txt does not "
      "name")):
    load(tmp_path)["clients"].load(0)


def test_images_of_two_sizes_are_refused_naming_both(layout, tmp_path):
  root, _ = layout
  shutil.copytree(root / "client_0", tmp_path / "client_0")
  write_classes(str(tmp_path))
  odd = tmp_path / "client_0" / "digit_9" / "9999.png"
  odd.parent.mkdir(exist_ok=True)
  Image.fromarray(np.zeros((6, 8), np.uint8), mode="L").save(odd)
  first = sorted((tmp_path / "client_0" / "digit_0").iterdir())[0]
  with pytest.raises(ClientFoldersError, match=(
      f"{odd} is 8x6 grayscale and {first} is 8x8 grayscale: the images of "
      f"{tmp_path}/client_0 must all have one size")):
    load(tmp_path)["clients"].load(0)


def test_a_gap_among_client_folders_and_a_missing_client_are_named(layout, tmp_path):
  root, _ = layout
  write_classes(str(tmp_path))
  for i in (0, 2):
    shutil.copytree(root / f"client_{i}", tmp_path / f"client_{i}")
  clients = load(tmp_path)["clients"]
  with pytest.raises(ClientFoldersError, match=(
      f"{tmp_path} holds client folders \\[0, 2\\], not client_0 .. client_1: client_1 is "
      "missing")):
    clients.num_clients
  with pytest.raises(ClientFoldersError, match=f"no folder {tmp_path}/client_1: client 1's"):
    clients.load(1)


def test_a_source_dir_that_is_no_folder_is_named(tmp_path):
  with pytest.raises(ClientFoldersError, match=(
      f"config.data.source_dir='{tmp_path}/nowhere' must be the client_folders root")):
    load(tmp_path / "nowhere")


def partition_cfg(**fields):
  return ml_collections.ConfigDict({"name": "client_folders", "partition": "natural",
                                    "num_clients": 3, "partition_seed": 4,
                                    "dirichlet_alpha": 0.5, "shards_per_client": 2,
                                    "examples_per_client": 0, **fields})


def test_natural_parts_are_the_clients_rows_each_capped_by_its_own_draw():
  assert [p.tolist() for p in natural_parts([2, 3, 1], [0, 1, 2], partition_cfg())] == [
      [0, 1], [2, 3, 4], [5]]
  capped = natural_parts([40, 30, 50], [0, 1, 2], partition_cfg(examples_per_client=20))
  assert [len(p) for p in capped] == [20, 20, 20]
  assert capped[1].min() >= 40 and capped[1].max() < 70 and capped[2].min() >= 70
  # A node holding client 1 alone (its rows at 0..29) keeps the simulation's rows.
  alone = natural_parts([30], [1], partition_cfg(examples_per_client=20))[0]
  np.testing.assert_array_equal(alone + 40, capped[1])


def test_the_local_test_splits_of_the_natural_partition_are_iid():
  test_y = np.arange(60) % 10
  natural = local_test_parts(test_y, partition_cfg())
  iid = local_test_parts(test_y, partition_cfg(partition="iid"))
  assert [len(p) for p in natural] == [20, 20, 20]
  assert all(np.array_equal(a, b) for a, b in zip(natural, iid))
  with pytest.raises(ConfigError, match=(
      "config.data.name='client_folders' gives no test example here .* give this party the "
      "test set, or set config.train.evaluation='central'")):
    local_test_parts(np.zeros((0,), np.int32), partition_cfg())
