"""Writes a tiny ``client_folders`` layout (``data/client_folders.py``) of digits PNGs, and
records which of its paths a process touches.

``write_layout(root)`` puts ``CLIENT_ROWS[i]`` of the digits training split in
``client_<i>/<class>/<row>.png`` and ``TEST_ROWS`` of the test split in
``test/<class>/<row>.png`` (8x8 grayscale, lossless), and returns the arrays each folder
should load: its rows in label order, then row order (the file names sort by row).
"""

import builtins
import os

import numpy as np
from PIL import Image

from fedbbpt_jax.data import load_digits_dataset

CLASS_NAMES = tuple(f"digit_{d}" for d in range(10))
CLIENT_ROWS = (range(0, 40), range(40, 70), range(70, 120))  # 40, 30 and 50 images
TEST_ROWS = range(0, 60)


def write_images(folder: str, images: np.ndarray, labels: np.ndarray, rows) -> tuple:
  """Writes ``images[rows]`` as ``<folder>/<class>/<row>.png``; the arrays a reader loads."""
  rows = np.asarray(list(rows))
  for r in rows:
    class_dir = os.path.join(folder, CLASS_NAMES[labels[r]])
    os.makedirs(class_dir, exist_ok=True)
    Image.fromarray(images[r], mode="L").save(os.path.join(class_dir, f"{r:04d}.png"))
  order = rows[np.lexsort((rows, labels[rows]))]
  return images[order], labels[order].astype(np.int32)


def write_classes(root: str, names=CLASS_NAMES) -> None:
  os.makedirs(root, exist_ok=True)
  with open(os.path.join(root, "classes.txt"), "w") as f:
    f.write("\n".join(names) + "\n")


def write_layout(root: str) -> dict:
  """The whole layout under ``root``; ``{"clients": [(x, y), ...], "test": (x, y)}``."""
  digits = load_digits_dataset()
  write_classes(root)
  clients = [write_images(os.path.join(root, f"client_{i}"), *digits["train"], rows)
             for i, rows in enumerate(CLIENT_ROWS)]
  return {"clients": clients,
          "test": write_images(os.path.join(root, "test"), *digits["test"], TEST_ROWS)}


def record_paths(monkeypatch, root: str) -> list[str]:
  """The paths under ``root`` (relative to it, '.' for itself) that this process opens,
  lists or stats from now on (``open``, ``os.scandir``, ``os.listdir``, ``os.stat``)."""
  root = os.path.abspath(root)
  seen: list[str] = []

  def recording(real):
    def call(path, *args, **kwargs):
      if isinstance(path, (str, os.PathLike)):
        full = os.path.abspath(os.fspath(path))
        if full == root or full.startswith(root + os.sep):
          seen.append(os.path.relpath(full, root))
      return real(path, *args, **kwargs)
    return call

  monkeypatch.setattr(builtins, "open", recording(builtins.open))
  for name in ("scandir", "listdir", "stat"):
    monkeypatch.setattr(os, name, recording(getattr(os, name)))
  return seen
