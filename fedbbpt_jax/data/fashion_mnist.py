"""Fashion-MNIST as a TFDS dataset built from local IDX files.

The raw files come from Debian's ``dataset-fashion-mnist`` package (or any
directory holding the four standard ``*-ubyte.gz`` files). They are converted
once into an ``array_record`` TFDS dataset and then read back through the
random-access data source, so no TensorFlow and no network access is needed.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.proto import tf_example_pb2

from fedbbpt_jax.data.idx import read_idx

DEFAULT_SOURCE_DIR: Final[str] = "/usr/share/datasets/fashion-mnist"
DATA_DIR_ENV_VAR: Final[str] = "FEDBBPT_DATA_DIR"
DEFAULT_DATA_DIR: Final[str] = "~/.cache/fedbbpt_jax/tfds"

CLASS_NAMES: Final[tuple[str, ...]] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
IMAGE_SHAPE: Final[tuple[int, int]] = (28, 28)

# Split name -> (images file, labels file), relative to the source directory.
SOURCE_FILES: Final[dict[str, tuple[str, str]]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

_SOURCE_FILE_LIST: Final[str] = ", ".join(
    name for pair in SOURCE_FILES.values() for name in pair
)

# Records fetched per batched read from the array_record data source.
_READ_BATCH_SIZE: Final[int] = 10_000


def _missing_source_error(path: str) -> FileNotFoundError:
  """Returns the error for a missing source file, with how to get it."""
  return FileNotFoundError(
      f"Fashion-MNIST source file {path} does not exist. Install it with "
      "`apt-get install dataset-fashion-mnist`, or point the "
      "`data.source_dir` config field at a directory holding "
      f"{_SOURCE_FILE_LIST}."
  )


def check_source_dir(source_dir: str | os.PathLike[str]) -> None:
  """Checks that ``source_dir`` holds the four Fashion-MNIST IDX files.

  Args:
    source_dir: Directory expected to hold the ``*-ubyte.gz`` files.

  Raises:
    FileNotFoundError: Naming the first missing file and how to get it.
  """
  for file_names in SOURCE_FILES.values():
    for file_name in file_names:
      path = os.path.join(os.fspath(source_dir), file_name)
      if not os.path.isfile(path):
        raise _missing_source_error(path)


def read_idx_split(
    source_dir: str | os.PathLike[str], split: str
) -> tuple[np.ndarray, np.ndarray]:
  """Reads one split straight from the IDX files and checks it.

  Args:
    source_dir: Directory holding the Fashion-MNIST ``*-ubyte.gz`` files.
    split: ``'train'`` or ``'test'``.

  Returns:
    ``(images, labels)``: uint8 ``[n, 28, 28]`` and uint8 ``[n]``.

  Raises:
    FileNotFoundError: If a file is missing.
    ValueError: If the files are malformed or inconsistent.
  """
  images_name, labels_name = SOURCE_FILES[split]
  images_path = os.path.join(os.fspath(source_dir), images_name)
  labels_path = os.path.join(os.fspath(source_dir), labels_name)
  for path in (images_path, labels_path):
    if not os.path.isfile(path):
      raise _missing_source_error(path)
  images = read_idx(images_path)
  labels = read_idx(labels_path)
  if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE:
    raise ValueError(
        f"{images_path}: expected uint8 images of shape [n, 28, 28], got "
        f"{images.dtype} {images.shape}."
    )
  if labels.dtype != np.uint8 or labels.shape != images.shape[:1]:
    raise ValueError(
        f"{labels_path}: expected {images.shape[0]} uint8 labels to match "
        f"{images_path}, got {labels.dtype} {labels.shape}."
    )
  if labels.size and labels.max() >= len(CLASS_NAMES):
    raise ValueError(
        f"{labels_path}: label {int(labels.max())} is out of range "
        f"[0, {len(CLASS_NAMES)})."
    )
  return images, labels


class LocalDatasetInfo(tfds.core.DatasetInfo):
  """``DatasetInfo`` of a builder prepared from local files only.

  TFDS looks for pre-computed metadata in its bucket whenever a builder is created before
  its data are prepared; with the bucket disabled (offline) it still makes an empty
  temporary directory first and never removes it, one per builder. A local builder has
  no bucket entry, so the lookup is skipped (nothing is left in the temporary folder).
  """

  def initialize_from_bucket(self) -> None:
    return None


class FashionMnistDebian(tfds.core.GeneratorBasedBuilder):
  """Fashion-MNIST prepared from the IDX files in the manual directory."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES: Mapping[str, str] = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Install the Debian package `dataset-fashion-mnist` (files land in "
      f"{DEFAULT_SOURCE_DIR}) or pass a directory holding "
      f"{_SOURCE_FILE_LIST} as `manual_dir`."
  )

  def __init__(self, **kwargs: Any) -> None:
    """Creates the builder; ``file_format`` defaults to array_record."""
    kwargs.setdefault("file_format", "array_record")
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    """Returns the dataset metadata: features, supervised keys, order."""
    # The builder lives outside a registered dataset module, so the
    # metadata must be tied to it explicitly via `builder=self`.
    return LocalDatasetInfo(
        builder=self,
        description=(
            "Fashion-MNIST: 28x28 grayscale images of 10 clothing "
            "classes, 60000 train and 10000 test examples."
        ),
        features=tfds.features.FeaturesDict({
            # Raw bytes instead of one int64 per pixel: faster to write,
            # and `_read_prepared_split` can decode whole batches at once.
            "image": tfds.features.Tensor(
                shape=IMAGE_SHAPE,
                dtype=np.uint8,
                encoding=tfds.features.Encoding.BYTES,
            ),
            "label": tfds.features.ClassLabel(names=list(CLASS_NAMES)),
        }),
        supervised_keys=("image", "label"),
        # Keep the IDX file order so records match the source files.
        disable_shuffling=True,
        homepage="https://github.com/zalandoresearch/fashion-mnist",
    )

  def _split_generators(
      self, dl_manager: tfds.download.DownloadManager
  ) -> dict[str, Iterator[tuple[int, dict[str, Any]]]]:
    """Returns one example generator per split, read from manual_dir."""
    source_dir = dl_manager.manual_dir
    check_source_dir(source_dir)
    return {
        split: self._generate_examples(source_dir, split)
        for split in SOURCE_FILES
    }

  def _generate_examples(
      self, source_dir: os.PathLike[str], split: str
  ) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yields ``(index, example)`` pairs in IDX file order."""
    images, labels = read_idx_split(source_dir, split)
    for i in range(images.shape[0]):
      yield i, {"image": images[i], "label": int(labels[i])}


def default_data_dir() -> str:
  """Returns the TFDS data directory: ``$FEDBBPT_DATA_DIR`` or the cache."""
  return os.path.expanduser(
      os.environ.get(DATA_DIR_ENV_VAR) or DEFAULT_DATA_DIR
  )


def _read_prepared_split(
    source: Sequence[Any],
) -> tuple[np.ndarray, np.ndarray]:
  """Reads every record of one split's data source into two arrays.

  Decoding each record through TFDS costs ~70 us of Python per example, so
  records are fetched in batches as raw bytes, parsed as
  ``tf.train.Example`` protos (TFDS' own copy of the proto, TensorFlow is
  not needed), and the image bytes of a whole batch are decoded with one
  ``np.frombuffer`` call. This relies on the builder storing images with
  ``Encoding.BYTES``.

  Args:
    source: A data source opened with ``DeserializeMethod.RAW_BYTES``.

  Returns:
    ``(images, labels)``: uint8 ``[n, 28, 28]`` and int32 ``[n]``.
  """
  n = len(source)
  images = np.empty((n, *IMAGE_SHAPE), dtype=np.uint8)
  labels = np.empty((n,), dtype=np.int32)
  for start in range(0, n, _READ_BATCH_SIZE):
    stop = min(start + _READ_BATCH_SIZE, n)
    features = [
        tf_example_pb2.Example.FromString(record).features.feature
        for record in source.__getitems__(range(start, stop))
    ]
    pixels = b"".join(f["image"].bytes_list.value[0] for f in features)
    images[start:stop] = np.frombuffer(pixels, dtype=np.uint8).reshape(
        (stop - start, *IMAGE_SHAPE)
    )
    labels[start:stop] = np.fromiter(
        (f["label"].int64_list.value[0] for f in features),
        dtype=np.int64,
        count=stop - start,
    )
  return images, labels


def load_fashion_mnist(
    source_dir: str = DEFAULT_SOURCE_DIR,
    data_dir: str | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Loads Fashion-MNIST, preparing the TFDS dataset on first use.

  Args:
    source_dir: Directory holding the four ``*-ubyte.gz`` IDX files. Only
      read when the dataset is not yet prepared in ``data_dir``.
    data_dir: TFDS data directory. Defaults to ``$FEDBBPT_DATA_DIR`` or
      ``~/.cache/fedbbpt_jax/tfds``.

  Returns:
    ``{'train': (images, labels), 'test': (images, labels)}`` with images
    uint8 ``[n, 28, 28]`` and labels int32 ``[n]`` (60000 train, 10000
    test examples for the real data).

  Raises:
    FileNotFoundError: If the dataset must be prepared and a source file
      is missing; the message names it and how to install it.
  """
  data_dir = os.path.expanduser(data_dir) if data_dir else default_data_dir()
  builder = FashionMnistDebian(data_dir=data_dir)
  if not builder.is_prepared():
    check_source_dir(source_dir)
    # Runs started side by side on a fresh machine would all prepare it and all but the
    # first fail renaming into the prepared folder: one prepares, the others wait and read.
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, "fashion_mnist_debian.lock"), "w") as lock:
      fcntl.flock(lock, fcntl.LOCK_EX)
      builder = FashionMnistDebian(data_dir=data_dir)
      if not builder.is_prepared():
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(
                manual_dir=source_dir,
                # Everything is local; never look for a hosted copy.
                try_download_gcs=False,
            )
        )
  sources = builder.as_data_source(
      deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES
  )
  return {
      split: _read_prepared_split(sources[split]) for split in SOURCE_FILES
  }
