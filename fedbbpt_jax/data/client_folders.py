"""An image dataset whose clients are folders: ``data.name='client_folders'``.

The layout under ``data.source_dir`` (``<root>``)::

    <root>/classes.txt                      # class names, one a line (label = line number)
    <root>/test/<class>/<image files>       # the test set (the server's)
    <root>/client_<i>/<class>/<image files> # client i's training images, i = 0, 1, ...

``classes.txt`` is the public schema every party holds. A ``<class>`` folder is named
like its line of ``classes.txt``; a class a folder lacks has no image there. The files
are JPEG/PNG/... (``IMAGE_SUFFIXES``) decoded at their native size: grayscale images
(PIL mode ``'L'``/``'1'``/``'LA'``) as uint8 ``[h, w]``, the others as RGB ``[h, w, 3]``;
the images one folder gives must all have one shape (an error names the first that
does not). Images are read in label order, then file-name order.

The dataset's natural partition (``data.partition='natural'``) is client ``i`` = folder
``client_<i>``. Its loader never opens a client's folder until that client is loaded
(``ClientFolders.load``), so each party reads only its own part of the layout: a
deployment's node its ``client_<i>/`` (and ``classes.txt``), the server ``test/`` and
``classes.txt``. ``test/`` is read when it exists (a node needs it only for federated
evaluation, whose local test split is the node's share of the test set).

Example::

    --config.data.name=client_folders --config.data.source_dir=/data/mine
    --config.data.partition=natural --config.data.num_clients=3
"""

from __future__ import annotations

import io
import os
import re
from typing import Any, Final

import numpy as np

from fedbbpt_jax.data.coop_folders import IMAGE_SUFFIXES

CLASSES_FILE: Final[str] = "classes.txt"
TEST_FOLDER: Final[str] = "test"
CLIENT_PREFIX: Final[str] = "client_"
GRAYSCALE_MODES: Final[tuple[str, ...]] = ("L", "1", "LA")
_CLIENT_FOLDER = re.compile(r"client_(0|[1-9][0-9]*)")


class ClientFoldersError(ValueError):
  """The folder layout is not the one ``client_folders`` reads; the message names the
  file or folder and what was expected."""


def client_folder(i: int) -> str:
  """The folder name of client ``i``: ``'client_<i>'``."""
  return f"{CLIENT_PREFIX}{int(i)}"


def read_class_names(root: str) -> tuple[str, ...]:
  """The lines of ``<root>/classes.txt`` (stripped, blank lines skipped).

  Raises:
    ClientFoldersError: the file is missing, names no class or names one twice.
  """
  path = os.path.join(root, CLASSES_FILE)
  if not os.path.isfile(path):
    raise ClientFoldersError(f"no file {path}: the client_folders layout needs the class names "
                             "there, one a line (every party holds it)")
  with open(path, encoding="utf-8") as f:
    names = tuple(line.strip() for line in f if line.strip())
  if not names:
    raise ClientFoldersError(f"{path} names no class (one class name a line)")
  repeated = sorted({n for n in names if names.count(n) > 1})
  if repeated:
    raise ClientFoldersError(f"{path} names {repeated} more than once")
  return names


def decode_file(path: str) -> np.ndarray:
  """The image file ``path`` as uint8 ``[h, w]`` (grayscale) or ``[h, w, 3]``.

  Raises:
    ClientFoldersError: naming ``path`` when it is not a decodable image.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  with open(path, "rb") as f:
    data = f.read()
  try:
    with Image.open(io.BytesIO(data)) as image:
      mode = "L" if image.mode in GRAYSCALE_MODES else "RGB"
      return np.asarray(image.convert(mode), np.uint8)
  except (OSError, SyntaxError, Image.DecompressionBombError) as e:
    raise ClientFoldersError(f"{path}: cannot decode the image ({e})") from e


def read_class_folders(folder: str, class_names: tuple[str, ...]
                       ) -> tuple[np.ndarray, np.ndarray]:
  """Every image of ``<folder>/<class>/``, labelled by the class's line in classes.txt.

  Returns:
    uint8 images ``[n, h, w]`` or ``[n, h, w, 3]`` and int32 labels ``[n]``, in label
    order, then file-name order.

  Raises:
    ClientFoldersError: ``folder`` is missing, holds a class folder that classes.txt does
      not name, or images of different shapes.
  """
  if not os.path.isdir(folder):
    raise ClientFoldersError(f"no folder {folder}")
  label_of = {name: label for label, name in enumerate(class_names)}
  present = sorted(e.name for e in os.scandir(folder)
                   if e.is_dir() and not e.name.startswith("."))
  unknown = [name for name in present if name not in label_of]
  if unknown:
    raise ClientFoldersError(f"{folder} holds class folders {unknown} that {CLASSES_FILE} does "
                             f"not name (it names {list(class_names)})")
  images, labels, first = [], [], None
  for name in sorted(present, key=label_of.__getitem__):
    class_dir = os.path.join(folder, name)
    for file_name in sorted(e.name for e in os.scandir(class_dir)
                            if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES)):
      path = os.path.join(class_dir, file_name)
      image = decode_file(path)
      if first is None:
        first = (path, image.shape)
      elif image.shape != first[1]:
        raise ClientFoldersError(f"{path} is {_shape_text(image.shape)} and {first[0]} is "
                                 f"{_shape_text(first[1])}: the images of {folder} must all "
                                 "have one size and colour mode (resize or convert them)")
      images.append(image)
      labels.append(label_of[name])
  if not images:
    raise ClientFoldersError(f"{folder} holds no image (expected <class>/<image files> with "
                             f"the suffixes {list(IMAGE_SUFFIXES)})")
  return np.stack(images), np.asarray(labels, np.int32)


def _shape_text(shape: tuple[int, ...]) -> str:
  colour = "RGB" if len(shape) == 3 else "grayscale"
  return f"{shape[1]}x{shape[0]} {colour}"


class ClientFolders:
  """The clients of a ``client_folders`` root: ``client_<i>/`` is client ``i``.

  Nothing is read when it is made: ``load(i)`` reads ``client_<i>/`` only, and
  ``num_clients`` lists the root's entries (it opens, lists or stats no client folder).
  """

  def __init__(self, root: str, class_names: tuple[str, ...]):
    self.root = root
    self.class_names = class_names

  @property
  def num_clients(self) -> int:
    """How many client folders the root holds (they must be ``client_0 .. client_<n-1>``).

    Raises:
      ClientFoldersError: the numbers have a gap (naming the missing folder).
    """
    with os.scandir(self.root) as entries:
      names = [e.name for e in entries if e.is_dir()]
    numbers = sorted(int(m.group(1)) for m in map(_CLIENT_FOLDER.fullmatch, names) if m)
    missing = sorted(set(range(len(numbers))) - set(numbers))
    if missing:
      raise ClientFoldersError(f"{self.root} holds client folders {numbers}, not "
                               f"client_0 .. client_{len(numbers) - 1}: "
                               f"{client_folder(missing[0])} is missing")
    return len(numbers)

  def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Client ``i``'s images and labels: ``read_class_folders`` of ``client_<i>/``."""
    folder = os.path.join(self.root, client_folder(i))
    if not os.path.isdir(folder):
      raise ClientFoldersError(f"no folder {folder}: client {i}'s training images go there "
                               "(<class>/<image files>)")
    return read_class_folders(folder, self.class_names)


def load_client_folders(data_cfg: Any) -> dict[str, Any]:
  """The ``client_folders`` dataset under ``data_cfg.source_dir``.

  Returns:
    ``{"clients": ClientFolders, "class_names": (...), "test": (images, labels)}``;
    ``"test"`` only where ``<root>/test/`` exists, and no ``"train"`` (the natural
    partition, ``data/registry.py``).

  Raises:
    ClientFoldersError: ``data.source_dir`` is not a folder, or the layout is broken
      (missing ``classes.txt``, an unnamed class folder, mixed image sizes).
  """
  root = os.path.abspath(os.path.expanduser(data_cfg.source_dir or ""))
  if not data_cfg.source_dir or not os.path.isdir(root):
    raise ClientFoldersError(f"config.data.source_dir={data_cfg.source_dir!r} must be the "
                             f"client_folders root (holding {CLASSES_FILE}, {TEST_FOLDER}/ and "
                             f"{CLIENT_PREFIX}<i>/ folders)")
  class_names = read_class_names(root)
  out: dict[str, Any] = {"clients": ClientFolders(root, class_names), "class_names": class_names}
  test = os.path.join(root, TEST_FOLDER)
  if os.path.isdir(test):
    out["test"] = read_class_folders(test, class_names)
  return out
