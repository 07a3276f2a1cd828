"""``data.name='coop:<set>'``: the k-shot sets decoded, cached, and shaped for the image family."""

import os

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.data import DATASETS, client_parts, label_histograms
from fedbbpt_jax.data.coop_benchmarks import COOP_BENCHMARKS
from fedbbpt_jax.data.few_shot import FewShotError
from fedbbpt_jax.data.image_decoding import decode_image
from tests.helpers.tiny_image_sets import image_bytes, tiny_tfds, write_split_json

PETS = ("abyssinian", "american_bulldog", "beagle")


def _config(**fields):
  """The coop fields; a test that loads gives its own cache_dir (never the user's cache)."""
  data = dict(root="", tfds_dir="", shots=2, shots_seed=1, image_size=16, cache_dir="/nonexistent")
  data.update(fields)
  return ml_collections.ConfigDict(data)


@pytest.fixture(name="pets")
def _pets(tmp_path):
  split = write_split_json(tmp_path / "data" / "oxford_pets", "split_zhou_OxfordPets.json",
                           "images", PETS, {"train": [3, 3, 4], "val": [3, 4, 3],
                                            "test": [2, 2, 1]})
  return tmp_path, split


def _reference(folder, entries):
  """``{label: [decoded image, ...]}`` of the split's files, decoded one by one."""
  out = {}
  for rel, label, _ in entries:
    out.setdefault(label, []).append(decode_image((folder / rel).read_bytes(), 16))
  return out


def _matches(images, labels, reference):
  """For each image, the index of the one file of its class it equals."""
  found = []
  for x, y in zip(images, labels):
    hits = [i for i, r in enumerate(reference[int(y)]) if np.array_equal(x, r)]
    assert len(hits) == 1
    found.append((int(y), hits[0]))
  return found


def test_a_coop_folder_set_loads_k_shots_val_and_the_whole_test_split(pets):
  tmp_path, split = pets
  cfg = _config(root=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"))
  data = DATASETS.get("coop:oxford_pets")(cfg)
  assert data["class_names"] == PETS
  (train_x, train_y), (val_x, val_y), (test_x, test_y) = data["train"], data["val"], data["test"]
  assert train_x.dtype == np.uint8 and train_x.shape == (6, 16, 16, 3)
  assert train_y.dtype == np.int32
  np.testing.assert_array_equal(np.bincount(train_y), [2, 2, 2])
  np.testing.assert_array_equal(np.bincount(val_y), [2, 2, 2])  # min(2, 4)
  np.testing.assert_array_equal(test_y, [0, 0, 1, 1, 2])
  images = tmp_path / "data" / "oxford_pets" / "images"
  for x, y, key in ((train_x, train_y, "train"), (val_x, val_y, "val"), (test_x, test_y, "test")):
    found = _matches(x, y, _reference(images, split[key]))
    assert len(set(found)) == len(found)  # distinct files
  np.testing.assert_array_equal(test_x[3], decode_image((images / split["test"][3][0])
                                                        .read_bytes(), 16))


def test_a_second_load_maps_the_cache_and_reads_no_image(pets):
  tmp_path, _ = pets
  cfg = _config(root=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"))
  first = DATASETS.get("coop:oxford_pets")(cfg)
  for dirpath, _, files in os.walk(tmp_path / "data" / "oxford_pets" / "images"):
    for f in files:
      os.remove(os.path.join(dirpath, f))
  again = DATASETS.get("coop:oxford_pets")(cfg)
  for key in ("train", "val", "test"):
    assert isinstance(again[key][0], np.memmap)
    np.testing.assert_array_equal(again[key][0], first[key][0])
    np.testing.assert_array_equal(again[key][1], first[key][1])
  with pytest.raises(FileNotFoundError, match=r"oxford_pets/images/.*\.png \(row \d+ of .*"
                                              r"split_zhou_OxfordPets.json split 'train'\)"):
    DATASETS.get("coop:oxford_pets")(_config(root=cfg.root, cache_dir=cfg.cache_dir,
                                             shots_seed=2))


def test_the_seed_picks_the_shots_and_a_short_class_is_named(pets):
  tmp_path, _ = pets
  root, cache = str(tmp_path / "data"), str(tmp_path / "cache")
  a = DATASETS.get("coop:oxford_pets")(_config(root=root, cache_dir=cache, shots=3))
  b = DATASETS.get("coop:oxford_pets")(_config(root=root, cache_dir=cache, shots=3, shots_seed=5))
  np.testing.assert_array_equal(np.bincount(a["train"][1]), [3, 3, 3])
  assert not np.array_equal(a["train"][0], b["train"][0])
  with pytest.raises(FewShotError, match=r"class 0 \('abyssinian'\) has 3 images in .*"
                                         r"split_zhou_OxfordPets.json split 'train'; the "
                                         r"4-shot protocol needs 4"):
    DATASETS.get("coop:oxford_pets")(_config(root=root, cache_dir=cache, shots=4))


def test_clients_split_the_k_shot_set(pets):
  tmp_path, _ = pets
  data = DATASETS.get("coop:oxford_pets")(_config(root=str(tmp_path / "data"), shots=3,
                                                  cache_dir=str(tmp_path / "cache")))
  train_y = data["train"][1]
  cfg = ml_collections.ConfigDict(dict(partition="iid", num_clients=3, partition_seed=0,
                                       dirichlet_alpha=0.5, shards_per_client=2,
                                       examples_per_client=0))
  parts = client_parts(train_y, cfg)
  assert [len(p) for p in parts] == [3, 3, 3]  # 9 shots, about 3 / 3 = 1 per class each
  np.testing.assert_array_equal(label_histograms(train_y, parts, 3).sum(axis=0), [3, 3, 3])


def test_a_tfds_set_through_the_registry_with_val_drawn_from_train(tmp_path):
  rng = np.random.default_rng(0)
  features = tfds.features.FeaturesDict({"image": tfds.features.Image(encoding_format="png"),
                                         "label": tfds.features.ClassLabel(names=["a", "b"])})
  examples = [{"image": image_bytes(rng, 20, 24)[0], "label": y} for y in [0, 1] * 5]
  tiny_tfds(tmp_path / "tfds", "svhn_cropped", features,
            {"train": examples[:8], "test": examples[8:]})
  data = DATASETS.get("coop:svhn")(_config(tfds_dir=str(tmp_path / "tfds"),
                                           cache_dir=str(tmp_path / "cache")))
  assert data["class_names"] == ("a", "b")
  np.testing.assert_array_equal(np.bincount(data["train"][1]), [2, 2])
  np.testing.assert_array_equal(np.bincount(data["val"][1]), [2, 2])
  for v in data["val"][0]:  # val comes from the train rows outside the k-shot set
    assert not any(np.array_equal(v, t) for t in data["train"][0])
  np.testing.assert_array_equal(data["test"][0][1], decode_image(examples[9]["image"], 16))


def test_the_source_and_field_refusals_name_the_fields(tmp_path):
  load = DATASETS.get("coop:eurosat")
  with pytest.raises(ConfigError) as e:
    load(_config())
  assert str(e.value) == (
      "config.data.name='coop:eurosat' reads its images from config.data.root (CoOp's "
      "DATASET.ROOT, the datasets in CoOp's folder layout) or config.data.tfds_dir (a "
      "prepared TFDS data_dir): set one (both are empty)")
  with pytest.raises(ConfigError, match=r"set one \(both are set\)"):
    load(_config(root="/a", tfds_dir="/b"))
  with pytest.raises(ConfigError, match=r"^config.data.name='coop:ucf101' has no TFDS reader: "
                                        "set config.data.root"):
    DATASETS.get("coop:ucf101")(_config(tfds_dir="/b"))
  with pytest.raises(ConfigError, match=r"^config.data.shots=-1 must be >= 0 \(images per "
                                        r"class; 0 = all\)$"):
    load(_config(root="/a", shots=-1))
  with pytest.raises(ConfigError, match=r"^config.data.image_size=2.5 must be an integer"):
    load(_config(root="/a", image_size=2.5))


def test_every_benchmark_is_registered_with_the_fields_it_reads():
  assert COOP_BENCHMARKS == ("caltech101", "clevr", "dtd", "eurosat", "fgvc_aircraft", "food101",
                             "imagenet", "oxford_flowers", "oxford_pets", "resisc45",
                             "stanford_cars", "sun397", "svhn", "ucf101")
  for name in COOP_BENCHMARKS:
    assert DATASETS.tags(f"coop:{name}") == frozenset({"image"})
    assert DATASETS.reads(f"coop:{name}") == {
        "data.root": "", "data.shots": 16, "data.shots_seed": 1, "data.image_size": 224,
        "data.cache_dir": ""}
