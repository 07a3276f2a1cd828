"""CoOp's dataset folders: split files, FGVCAircraft's txt files, ImageNet's folders, SVHN."""

import dataclasses
import json

import numpy as np
import pytest

from fedbbpt_jax.data.coop_folders import (COOP_LAYOUTS, CoopLayoutError, open_coop_folder)
from tests.helpers.tiny_image_sets import write_image, write_split_json

PETS = ("abyssinian", "american_bulldog", "beagle")


@pytest.fixture(name="pets_root")
def _pets_root(tmp_path):
  write_split_json(tmp_path / "oxford_pets", "split_zhou_OxfordPets.json", "images", PETS,
                   {"train": [3, 2, 4], "val": [1, 1, 1], "test": [2, 2, 1]})
  return tmp_path


def test_split_json_labels_paths_and_class_names_as_the_file_has_them(pets_root):
  images = open_coop_folder("oxford_pets", str(pets_root))
  assert images.class_names == PETS  # '_' kept
  assert sorted(images.splits) == ["test", "train", "val"]
  np.testing.assert_array_equal(images.splits["train"].labels, [0, 0, 0, 1, 1, 2, 2, 2, 2])
  np.testing.assert_array_equal(images.splits["test"].labels, [0, 0, 1, 1, 2])
  train = images.splits["train"]
  assert train.identity([3]) == [str(pets_root / "oxford_pets/images/american_bulldog/train_0.png")]
  assert train.fetch(np.array([3])) == [
      (pets_root / "oxford_pets/images/american_bulldog/train_0.png").read_bytes()]
  assert train.where == f"{pets_root}/oxford_pets/split_zhou_OxfordPets.json split 'train'"


def test_root_may_be_the_dataset_folder_itself(pets_root):
  images = open_coop_folder("oxford_pets", str(pets_root / "oxford_pets"))
  assert len(images.splits["train"]) == 9


def test_a_missing_split_file_is_named_with_the_expected_layout(tmp_path):
  (tmp_path / "eurosat" / "2750").mkdir(parents=True)
  with pytest.raises(CoopLayoutError) as e:
    open_coop_folder("eurosat", str(tmp_path))
  assert str(e.value) == (
      f"dataset 'eurosat': no split file {tmp_path}/eurosat/split_zhou_EuroSAT.json; expected "
      "<root>/eurosat/split_zhou_EuroSAT.json (keys 'train', 'val', 'test', each a list of "
      "[relative_image_path, label, classname]) and the images under <root>/eurosat/2750/")
  with pytest.raises(CoopLayoutError, match=rf"no dataset folder {tmp_path}/dtd \(and "
                                            rf"{tmp_path} holds none of"):
    open_coop_folder("dtd", str(tmp_path))


def test_a_missing_image_is_named_when_fetched(pets_root):
  (pets_root / "oxford_pets/images/beagle/test_0.png").unlink()
  test = open_coop_folder("oxford_pets", str(pets_root)).splits["test"]
  test.fetch(np.array([0, 1]))
  with pytest.raises(FileNotFoundError, match=(
      rf"^image {pets_root}/oxford_pets/images/beagle/test_0.png \(row 4 of {pets_root}/"
      r"oxford_pets/split_zhou_OxfordPets.json split 'test'\) does not exist$")):
    test.fetch(np.array([4]))


def test_malformed_split_entries_and_conflicting_names_are_refused(pets_root):
  path = pets_root / "oxford_pets/split_zhou_OxfordPets.json"
  split = json.loads(path.read_text())
  split["val"][1] = ["x.png", "1", "american_bulldog"]
  path.write_text(json.dumps(split))
  with pytest.raises(CoopLayoutError, match=r"val\[1\] = \['x.png', '1', 'american_bulldog'\] "
                                            r"must be \[relative_image_path, label"):
    open_coop_folder("oxford_pets", str(pets_root))
  split["val"][1] = ["x.png", 1, "bulldog"]
  path.write_text(json.dumps(split))
  with pytest.raises(CoopLayoutError, match="label 1 is named both 'american_bulldog' and "
                                            r"'bulldog' \(val\[1\]\)"):
    open_coop_folder("oxford_pets", str(pets_root))


def test_fgvc_aircraft_variants_and_image_id_lists(tmp_path):
  folder = tmp_path / "fgvc_aircraft"
  rng = np.random.default_rng(0)
  (folder / "images").mkdir(parents=True)
  (folder / "variants.txt").write_text("707-320\nA300B4\nDC-10\n")
  lines = {"train": ["0001 A300B4", "0002 707-320", "0003 DC-10"], "val": ["0004 DC-10"],
           "test": ["0005 A300B4", "0006 707-320"]}
  for key, rows in lines.items():
    (folder / f"images_variant_{key}.txt").write_text("\n".join(rows) + "\n")
    for row in rows:
      write_image(folder / "images" / f"{row.split()[0]}.jpg", rng, 20, 30)
  images = open_coop_folder("fgvc_aircraft", str(tmp_path))
  assert images.class_names == ("707-320", "A300B4", "DC-10")
  np.testing.assert_array_equal(images.splits["train"].labels, [1, 0, 2])
  np.testing.assert_array_equal(images.splits["val"].labels, [2])
  np.testing.assert_array_equal(images.splits["test"].labels, [1, 0])
  assert images.splits["test"].identity([1]) == [str(folder / "images/0006.jpg")]
  (folder / "images_variant_val.txt").write_text("0004 Boeing 747\n")
  with pytest.raises(CoopLayoutError, match=rf"{folder}/images_variant_val.txt line 1: class "
                                            rf"'Boeing 747' is not in {folder}/variants.txt"):
    open_coop_folder("fgvc_aircraft", str(tmp_path))
  (folder / "images_variant_test.txt").unlink()
  (folder / "images_variant_val.txt").write_text("0004 DC-10\n")
  with pytest.raises(CoopLayoutError, match=rf"no file {folder}/images_variant_test.txt; "
                                            "expected <root>/fgvc_aircraft/ holding variants"):
    open_coop_folder("fgvc_aircraft", str(tmp_path))


def test_imagenet_class_folders_and_classnames_txt(tmp_path):
  folder = tmp_path / "imagenet"
  rng = np.random.default_rng(0)
  (folder).mkdir()
  (folder / "classnames.txt").write_text("n01440764 tench\nn01443537 goldfish\n")
  for sub, counts in (("train", (2, 3)), ("val", (1, 1))):
    for wnid, n in zip(("n01440764", "n01443537"), counts):
      for i in range(n):
        write_image(folder / "images" / sub / wnid / f"{i}.JPEG", rng, 20, 20)
  images = open_coop_folder("imagenet", str(tmp_path))
  assert images.class_names == ("tench", "goldfish") and sorted(images.splits) == ["test", "train"]
  np.testing.assert_array_equal(images.splits["train"].labels, [0, 0, 1, 1, 1])
  np.testing.assert_array_equal(images.splits["test"].labels, [0, 1])
  assert images.splits["test"].identity([1]) == [str(folder / "images/val/n01443537/0.JPEG")]
  (folder / "images/train/n09999999").mkdir()
  with pytest.raises(CoopLayoutError, match=r"classnames.txt names no class for the folders "
                                            r"\['n09999999'\]"):
    open_coop_folder("imagenet", str(tmp_path))


def test_svhn_split_without_test_reads_the_test_class_folders(tmp_path):
  folder = tmp_path / "svhn"
  rng = np.random.default_rng(0)
  write_split_json(folder, "split_SVHN.json", "train", ("0", "1"), {"train": [2, 2], "val": [1, 1]})
  for cls, n in (("0", 1), ("1", 2)):
    for i in range(n):
      write_image(folder / "test" / cls / f"{i:05d}.jpg", rng, 32, 32)
  images = open_coop_folder("svhn", str(tmp_path))
  assert images.class_names == ("0", "1")
  np.testing.assert_array_equal(images.splits["test"].labels, [0, 1, 1])
  assert images.splits["test"].identity([2]) == [str(folder / "test/1/00001.jpg")]
  assert images.splits["train"].identity([0]) == [str(folder / "train/0/train_0.png")]


def test_a_layout_is_an_overridable_default(tmp_path):
  write_split_json(tmp_path / "pets", "my_split.json", "imgs", PETS,
                   {"train": [1, 1, 1], "val": [1, 1, 1], "test": [1, 1, 1]})
  layout = dataclasses.replace(COOP_LAYOUTS["oxford_pets"], folder="pets", image_dir="imgs",
                               split_files=("my_split.json",))
  images = open_coop_folder("oxford_pets", str(tmp_path), layout)
  assert images.splits["val"].identity([2]) == [str(tmp_path / "pets/imgs/beagle/val_0.png")]
