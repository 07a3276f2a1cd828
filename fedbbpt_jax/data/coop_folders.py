"""Readers of the dataset folders CoOp and BlackVIP distribute (their few-shot benchmarks).

CoOp's ``DATASET.ROOT`` holds one folder per dataset (``COOP_LAYOUTS``: its name, its
image folder, its split file). Most datasets come with a split file
``split_zhou_<Dataset>.json`` (BlackVIP's own sets: ``split_mlai_<Dataset>.json``)::

    {"train": [["<image path relative to the image folder>", <label int>, "<class name>"],
               ...],
     "val": [...], "test": [...]}

Three follow other formats, as CoOp reads them:

* FGVCAircraft (``fgvc_variants``): ``variants.txt`` (one class name per line, label =
  line number) and ``images_variant_{train,val,test}.txt`` (lines ``<image id> <class
  name>``, image ``images/<image id>.jpg``);
* ImageNet (``imagenet_folders``): ``images/train/<wnid>/*`` (label = the wnid's place
  among the sorted folders), ``images/val/<wnid>/*`` as the test split (no val split),
  and ``classnames.txt`` (lines ``<wnid> <class name>``);
* SVHN in BlackVIP (``split_json`` with ``test_dir``): a split file with ``train`` and
  ``val`` only, paths relative to ``svhn/train``; the test split is every image of
  ``svhn/test/<class>/`` (label = the class folder's place among the sorted folders).

Class names are the split file's (CoOp writes some with '_', e.g. OxfordPets'
``'american_bulldog'``; its trainers replace '_' with ' ' when they build a prompt).
They are kept as the file has them; ``class_names`` of the loaded dataset are these.
Labels too are the file's: BlackVIP's CLEVR split numbers the object counts in the
string order of their names (label 0 is '10', label 1 is '3'), where the TFDS reader
(``data/tfds_images.py``) uses ``count - 3``.

A layout is a default, not a rule: ``COOP_LAYOUTS`` maps each benchmark to a
``CoopLayout`` that a user may replace (``dataclasses.replace``) and pass to
``open_coop_folder``. The folder and file names are those CoOp's and BlackVIP's
dataset readers expect; a split file is looked up under each of its candidate
names in turn (SVHN: ``split_mlai_SVHN.json``, then BlackVIP's ``split_SVHN.json``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Final, Sequence

import numpy as np

from fedbbpt_jax.data.labelled_images import ImageSplit, LabelledImages

SPLIT_JSON, FGVC_VARIANTS, IMAGENET_FOLDERS = "split_json", "fgvc_variants", "imagenet_folders"
IMAGE_SUFFIXES: Final[tuple[str, ...]] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp",
                                          ".tif", ".tiff")


@dataclasses.dataclass(frozen=True)
class CoopLayout:
  """Where a dataset's images and split live, inside CoOp's ``DATASET.ROOT``.

  Attributes:
    folder: the dataset's folder under the root (CoOp's ``dataset_dir``).
    image_dir: the image folder inside it, that split paths are relative to
      (``''``: the dataset folder itself).
    split_files: candidate names of the split file (``split_json``), first found wins.
    kind: ``'split_json'``, ``'fgvc_variants'`` or ``'imagenet_folders'``.
    test_dir: a folder (inside the dataset folder) of class folders read as the test
      split when the split file has no ``'test'`` key (BlackVIP's SVHN).
  """

  folder: str
  image_dir: str
  split_files: tuple[str, ...] = ()
  kind: str = SPLIT_JSON
  test_dir: str = ""

  def expected(self) -> str:
    """The layout in words, for error messages."""
    if self.kind == FGVC_VARIANTS:
      return (f"<root>/{self.folder}/ holding variants.txt, images_variant_{{train,val,test}}"
              f".txt and {self.image_dir}/<image id>.jpg (CoOp's FGVCAircraft layout)")
    if self.kind == IMAGENET_FOLDERS:
      return (f"<root>/{self.folder}/ holding classnames.txt ('<wnid> <class name>' lines), "
              f"{self.image_dir}/train/<wnid>/* and {self.image_dir}/val/<wnid>/* "
              "(CoOp's ImageNet layout)")
    images = f"{self.image_dir}/" if self.image_dir else ""
    test = (f"; without a 'test' key, the test images are {self.test_dir}/<class>/*"
            if self.test_dir else "")
    return (f"<root>/{self.folder}/{' or '.join(self.split_files)} (keys 'train', 'val', "
            "'test', each a list of [relative_image_path, label, classname]) and the "
            f"images under <root>/{self.folder}/{images}{test}")


COOP_LAYOUTS: Final[dict[str, CoopLayout]] = {
    "caltech101": CoopLayout("caltech-101", "101_ObjectCategories",
                             ("split_zhou_Caltech101.json",)),
    "oxford_pets": CoopLayout("oxford_pets", "images", ("split_zhou_OxfordPets.json",)),
    "stanford_cars": CoopLayout("stanford_cars", "", ("split_zhou_StanfordCars.json",)),
    "oxford_flowers": CoopLayout("oxford_flowers", "jpg", ("split_zhou_OxfordFlowers.json",)),
    "food101": CoopLayout("food-101", "images", ("split_zhou_Food101.json",)),
    "fgvc_aircraft": CoopLayout("fgvc_aircraft", "images", kind=FGVC_VARIANTS),
    "sun397": CoopLayout("sun397", "SUN397", ("split_zhou_SUN397.json",)),
    "dtd": CoopLayout("dtd", "images", ("split_zhou_DescribableTextures.json",)),
    "svhn": CoopLayout("svhn", "train", ("split_mlai_SVHN.json", "split_SVHN.json"),
                       test_dir="test"),
    "eurosat": CoopLayout("eurosat", "2750", ("split_zhou_EuroSAT.json",)),
    "resisc45": CoopLayout("resisc45", "NWPU-RESISC45", ("split_mlai_Resisc45.json",)),
    "clevr": CoopLayout("CLEVR_v1.0", "images", ("split_mlai_CLEVR.json",)),
    "ucf101": CoopLayout("ucf101", "UCF-101-midframes", ("split_zhou_UCF101.json",)),
    "imagenet": CoopLayout("imagenet", "images", kind=IMAGENET_FOLDERS),
}


class CoopLayoutError(FileNotFoundError):
  """A dataset folder lacks a file or folder of its layout, or a file is malformed."""


def _layout_marker(layout: CoopLayout) -> tuple[str, ...]:
  """Files whose presence says a folder is the dataset folder itself."""
  if layout.kind == FGVC_VARIANTS:
    return ("variants.txt",)
  if layout.kind == IMAGENET_FOLDERS:
    return ("classnames.txt",)
  return layout.split_files


def dataset_folder(root: str, layout: CoopLayout) -> str:
  """``<root>/<layout.folder>``, or ``root`` itself when it is the dataset folder.

  Raises:
    CoopLayoutError: naming both places and the expected layout.
  """
  root = os.path.abspath(os.path.expanduser(root))
  folder = os.path.join(root, layout.folder)
  if os.path.isdir(folder):
    return folder
  if any(os.path.isfile(os.path.join(root, m)) for m in _layout_marker(layout)):
    return root
  raise CoopLayoutError(f"no dataset folder {folder} (and {root} holds none of "
                        f"{list(_layout_marker(layout))}); expected {layout.expected()}")


def _split(where: str, root: str, paths: Sequence[str], labels: Sequence[int]) -> ImageSplit:
  """A split of image files ``root/paths[i]`` with ``labels[i]``."""
  paths = list(paths)

  def fetch(rows: np.ndarray) -> list[bytes]:
    out = []
    for r in np.asarray(rows, np.int64):
      path = os.path.join(root, paths[r])
      try:
        with open(path, "rb") as f:
          out.append(f.read())
      except FileNotFoundError as e:
        raise FileNotFoundError(f"image {path} (row {int(r)} of {where}) does not "
                                "exist") from e
    return out

  return ImageSplit(labels=np.asarray(labels, np.int64).reshape(-1), fetch=fetch,
                    identity=lambda rows: [os.path.join(root, paths[r]) for r in rows],
                    where=where)


def _class_names(named: dict[int, str], where: str) -> tuple[str, ...]:
  """Names of labels ``0..max`` from ``{label: name}``; every label must be named."""
  if not named:
    raise CoopLayoutError(f"{where} lists no images")
  num_classes = max(named) + 1
  missing = [c for c in range(num_classes) if c not in named]
  if missing:
    raise CoopLayoutError(f"{where}: labels {missing[:10]} have no image (labels must be "
                          f"0..{num_classes - 1}, each with a class name)")
  return tuple(named[c] for c in range(num_classes))


def _read_split_json(path: str) -> dict[str, Any]:
  try:
    with open(path) as f:
      split = json.load(f)
  except json.JSONDecodeError as e:
    raise CoopLayoutError(f"{path} is not valid JSON ({e})") from e
  if not isinstance(split, dict) or not {"train", "val"} <= set(split):
    raise CoopLayoutError(f"{path} must be a JSON object with keys 'train', 'val' and "
                          f"'test', got {sorted(split) if isinstance(split, dict) else split!r}")
  return split


def _entries(split: dict[str, Any], key: str, path: str, named: dict[int, str]
             ) -> tuple[list[str], list[int]]:
  """(paths, labels) of ``split[key]``, its class names recorded in ``named``."""
  paths, labels = [], []
  for i, entry in enumerate(split[key]):
    if (not isinstance(entry, (list, tuple)) or len(entry) != 3
        or not isinstance(entry[0], str) or isinstance(entry[1], bool)
        or not isinstance(entry[1], int) or entry[1] < 0):
      raise CoopLayoutError(f"{path} {key}[{i}] = {entry!r} must be [relative_image_path, "
                            "label (int >= 0), classname]")
    label, name = entry[1], str(entry[2])
    if named.setdefault(label, name) != name:
      raise CoopLayoutError(f"{path}: label {label} is named both {named[label]!r} and "
                            f"{name!r} ({key}[{i}])")
    paths.append(entry[0])
    labels.append(label)
  return paths, labels


def _class_folders(parent: str) -> list[str]:
  return sorted(e.name for e in os.scandir(parent) if e.is_dir() and not e.name.startswith("."))


def _folder_images(folder: str) -> list[str]:
  return sorted(e.name for e in os.scandir(folder)
                if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES))


def _open_split_json(name: str, folder: str, layout: CoopLayout) -> LabelledImages:
  tried = [os.path.join(folder, f) for f in layout.split_files]
  path = next((p for p in tried if os.path.isfile(p)), None)
  if path is None:
    raise CoopLayoutError(f"dataset {name!r}: no split file {' or '.join(tried)}; expected "
                          f"{layout.expected()}")
  image_root = os.path.join(folder, layout.image_dir)
  split = _read_split_json(path)
  named: dict[int, str] = {}
  splits = {}
  for key in ("train", "val", "test"):
    if key in split:
      splits[key] = _split(f"{path} split {key!r}", image_root,
                           *_entries(split, key, path, named))
  if "test" not in splits:
    if not layout.test_dir:
      raise CoopLayoutError(f"{path} has no 'test' key; expected {layout.expected()}")
    test_root = os.path.join(folder, layout.test_dir)
    if not os.path.isdir(test_root):
      raise CoopLayoutError(f"{path} has no 'test' key and there is no folder {test_root}; "
                            f"expected {layout.expected()}")
    paths, labels = [], []
    for label, cls in enumerate(_class_folders(test_root)):
      images = _folder_images(os.path.join(test_root, cls))
      paths += [os.path.join(cls, f) for f in images]
      labels += [label] * len(images)
      named.setdefault(label, cls)
    splits["test"] = _split(f"{test_root} (class folders, the test split)", test_root, paths,
                            labels)
  return LabelledImages(f"{name} ({folder})", splits, _class_names(named, path))


def _read_lines(path: str, layout: CoopLayout) -> list[str]:
  if not os.path.isfile(path):
    raise CoopLayoutError(f"no file {path}; expected {layout.expected()}")
  with open(path) as f:
    return [line.strip() for line in f if line.strip()]


def _open_fgvc(name: str, folder: str, layout: CoopLayout) -> LabelledImages:
  variants_path = os.path.join(folder, "variants.txt")
  class_names = tuple(_read_lines(variants_path, layout))
  label_of = {c: i for i, c in enumerate(class_names)}
  image_root = os.path.join(folder, layout.image_dir)
  splits = {}
  for key in ("train", "val", "test"):
    path = os.path.join(folder, f"images_variant_{key}.txt")
    paths, labels = [], []
    for n, line in enumerate(_read_lines(path, layout)):
      image_id, _, variant = line.partition(" ")
      if variant not in label_of:
        raise CoopLayoutError(f"{path} line {n + 1}: class {variant!r} is not in "
                              f"{variants_path}")
      paths.append(image_id + ".jpg")
      labels.append(label_of[variant])
    splits[key] = _split(f"{path}", image_root, paths, labels)
  return LabelledImages(f"{name} ({folder})", splits, class_names)


def _open_imagenet(name: str, folder: str, layout: CoopLayout) -> LabelledImages:
  names_path = os.path.join(folder, "classnames.txt")
  wnid_names = {}
  for line in _read_lines(names_path, layout):
    wnid, _, class_name = line.partition(" ")
    wnid_names[wnid] = class_name.strip()
  image_root = os.path.join(folder, layout.image_dir)
  splits = {}
  wnids: list[str] = []
  for key, sub in (("train", "train"), ("test", "val")):
    split_root = os.path.join(image_root, sub)
    if not os.path.isdir(split_root):
      raise CoopLayoutError(f"no folder {split_root}; expected {layout.expected()}")
    folders = _class_folders(split_root)
    if key == "train":
      wnids = folders
      unnamed = [w for w in wnids if w not in wnid_names]
      if unnamed:
        raise CoopLayoutError(f"{names_path} names no class for the folders {unnamed[:5]} of "
                              f"{split_root}")
    elif folders != wnids:
      raise CoopLayoutError(f"{split_root} and {os.path.join(image_root, 'train')} hold "
                            "different class folders: they must be the same wnids")
    paths, labels = [], []
    for label, wnid in enumerate(wnids):
      images = _folder_images(os.path.join(split_root, wnid))
      paths += [os.path.join(wnid, f) for f in images]
      labels += [label] * len(images)
    splits[key] = _split(f"{split_root} (class folders)", split_root, paths, labels)
  return LabelledImages(f"{name} ({folder})", splits, tuple(wnid_names[w] for w in wnids))


def open_coop_folder(name: str, root: str, layout: CoopLayout | None = None) -> LabelledImages:
  """Opens benchmark ``name`` in CoOp's layout under ``root`` (labels only; no image read).

  Args:
    name: a key of ``COOP_LAYOUTS`` (or any name, with ``layout``).
    root: CoOp's ``DATASET.ROOT`` (the folder holding ``<layout.folder>``), or the
      dataset folder itself.
    layout: overrides ``COOP_LAYOUTS[name]``.

  Returns:
    ``LabelledImages`` with ``train``, ``test`` and (except ImageNet) ``val`` splits.

  Raises:
    CoopLayoutError: a missing split file or folder (named, with the expected layout),
      or a malformed split file.
    KeyError: ``name`` has no layout and none is given.
  """
  if layout is None:
    if name not in COOP_LAYOUTS:
      raise KeyError(f"no CoOp layout for {name!r}; known: {sorted(COOP_LAYOUTS)} (or pass "
                     "layout=CoopLayout(...))")
    layout = COOP_LAYOUTS[name]
  folder = dataset_folder(root, layout)
  if layout.kind == FGVC_VARIANTS:
    return _open_fgvc(name, folder, layout)
  if layout.kind == IMAGENET_FOLDERS:
    return _open_imagenet(name, folder, layout)
  if layout.kind != SPLIT_JSON:
    raise ValueError(f"layout kind {layout.kind!r} must be one of "
                     f"{[SPLIT_JSON, FGVC_VARIANTS, IMAGENET_FOLDERS]}")
  return _open_split_json(name, folder, layout)
