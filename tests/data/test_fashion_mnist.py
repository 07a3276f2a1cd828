"""Tests for the IDX reader and the Fashion-MNIST TFDS builder and loader."""

from __future__ import annotations

import gzip
import os
import pathlib
import tempfile

import numpy as np
import pytest

from fedbbpt_jax.data import fashion_mnist as fm
from fedbbpt_jax.data.idx import read_idx

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"

_TYPE_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


def _write_idx(path: pathlib.Path, array: np.ndarray) -> None:
  """Writes ``array`` as an IDX file, gzipped if ``path`` ends in .gz."""
  header = bytes([0, 0, _TYPE_CODES[array.dtype], array.ndim])
  header += np.asarray(array.shape, dtype=">u4").tobytes()
  payload = array.astype(array.dtype.newbyteorder(">")).tobytes()
  opener = gzip.open if path.suffix == ".gz" else open
  with opener(path, "wb") as f:
    f.write(header + payload)


def _write_source_dir(
    root: pathlib.Path, sizes: dict[str, int], seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Writes small random Fashion-MNIST-like IDX files under ``root``."""
  rng = np.random.default_rng(seed)
  root.mkdir(parents=True, exist_ok=True)
  arrays = {}
  for split, (images_name, labels_name) in fm.SOURCE_FILES.items():
    n = sizes[split]
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(n,), dtype=np.uint8)
    _write_idx(root / images_name, images)
    _write_idx(root / labels_name, labels)
    arrays[split] = (images, labels)
  return arrays


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
)
def test_read_idx_round_trip(
    tmp_path: pathlib.Path, suffix: str, dtype: type
) -> None:
  array = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
  path = tmp_path / f"array.idx{suffix}"
  _write_idx(path, array)
  result = read_idx(path)
  assert result.dtype == np.dtype(dtype).newbyteorder("=")
  assert result.dtype.isnative
  np.testing.assert_array_equal(result, array)


def test_read_idx_bad_magic_names_file(tmp_path: pathlib.Path) -> None:
  path = tmp_path / "bad.idx"
  path.write_bytes(b"\x01\x02\x08\x01" + bytes(8))
  with pytest.raises(ValueError, match=r"bad\.idx.*magic"):
    read_idx(path)


def test_read_idx_size_mismatch_names_file(tmp_path: pathlib.Path) -> None:
  path = tmp_path / "short.idx"
  _write_idx(path, np.zeros((4, 5), dtype=np.uint8))
  path.write_bytes(path.read_bytes()[:-1])
  with pytest.raises(ValueError, match=r"short\.idx.*\(4, 5\)"):
    read_idx(path)


def test_read_idx_corrupt_gzip_names_file(tmp_path: pathlib.Path) -> None:
  path = tmp_path / "corrupt.idx.gz"
  path.write_bytes(b"\x1f\x8b" + b"not gzip at all")
  with pytest.raises(ValueError, match=r"corrupt\.idx\.gz"):
    read_idx(path)


def test_builder_prepares_from_manual_dir(tmp_path: pathlib.Path) -> None:
  source_dir = tmp_path / "source"
  expected = _write_source_dir(source_dir, {"train": 50, "test": 20})
  data_dir = tmp_path / "tfds"

  loaded = fm.load_fashion_mnist(str(source_dir), data_dir=str(data_dir))

  assert set(loaded) == {"train", "test"}
  for split, (images, labels) in expected.items():
    got_images, got_labels = loaded[split]
    assert got_images.dtype == np.uint8
    assert got_labels.dtype == np.int32
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)

  builder = fm.FashionMnistDebian(data_dir=str(data_dir))
  assert builder.is_prepared()
  assert builder.info.file_format.value == "array_record"
  assert builder.info.features["label"].names == list(fm.CLASS_NAMES)
  assert builder.info.splits["train"].num_examples == 50
  # The stock TFDS decoding path agrees with the batched fast path.
  record = builder.as_data_source(split="test")[3]
  np.testing.assert_array_equal(record["image"], expected["test"][0][3])
  assert record["label"] == expected["test"][1][3]


def test_preparing_leaves_nothing_in_the_temporary_folder(tmp_path, monkeypatch) -> None:
  """TFDS makes an empty temporary directory for every builder created before its data
  are prepared (a bucket lookup, disabled offline) and never removes it: 1,400 were left
  in a day of test runs. The local builder skips that lookup."""
  temp = tmp_path / "temp"
  temp.mkdir()
  monkeypatch.setattr(tempfile, "tempdir", str(temp))
  source_dir = tmp_path / "source"
  _write_source_dir(source_dir, {"train": 10, "test": 5})
  fm.load_fashion_mnist(str(source_dir), data_dir=str(tmp_path / "tfds"))
  assert fm.FashionMnistDebian(data_dir=str(tmp_path / "tfds")).is_prepared()
  assert sorted(os.listdir(temp)) == []


def test_prepared_dataset_needs_no_source(tmp_path: pathlib.Path) -> None:
  source_dir = tmp_path / "source"
  expected = _write_source_dir(source_dir, {"train": 5, "test": 3})
  data_dir = str(tmp_path / "tfds")
  fm.load_fashion_mnist(str(source_dir), data_dir=data_dir)
  for path in source_dir.iterdir():
    path.unlink()

  loaded = fm.load_fashion_mnist(str(source_dir), data_dir=data_dir)

  np.testing.assert_array_equal(loaded["test"][0], expected["test"][0])


def test_data_dir_from_env(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
  source_dir = tmp_path / "source"
  _write_source_dir(source_dir, {"train": 4, "test": 2})
  monkeypatch.setenv(fm.DATA_DIR_ENV_VAR, str(tmp_path / "env_tfds"))

  assert fm.default_data_dir() == str(tmp_path / "env_tfds")
  loaded = fm.load_fashion_mnist(str(source_dir))

  assert loaded["train"][0].shape == (4, 28, 28)
  assert (tmp_path / "env_tfds" / "fashion_mnist_debian").is_dir()


def test_missing_source_raises(tmp_path: pathlib.Path) -> None:
  source_dir = tmp_path / "source"
  _write_source_dir(source_dir, {"train": 4, "test": 2})
  missing = source_dir / "t10k-labels-idx1-ubyte.gz"
  missing.unlink()

  with pytest.raises(FileNotFoundError) as info:
    fm.load_fashion_mnist(str(source_dir), data_dir=str(tmp_path / "d"))

  message = str(info.value)
  assert str(missing) in message
  assert "apt-get install dataset-fashion-mnist" in message
  assert "data.source_dir" in message
  assert not (tmp_path / "d" / "fashion_mnist_debian").exists()


def test_bad_labels_are_rejected(tmp_path: pathlib.Path) -> None:
  source_dir = tmp_path / "source"
  _write_source_dir(source_dir, {"train": 4, "test": 2})
  _write_idx(
      source_dir / "train-labels-idx1-ubyte.gz",
      np.array([0, 1, 2, 10], dtype=np.uint8),
  )
  with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz"):
    fm.read_idx_split(source_dir, "train")


@pytest.mark.skipif(
    not os.path.isdir(DEBIAN_DIR),
    reason="dataset-fashion-mnist not installed",
)
def test_real_fashion_mnist(tmp_path: pathlib.Path) -> None:
  loaded = fm.load_fashion_mnist(DEBIAN_DIR, data_dir=str(tmp_path))

  train_x, train_y = loaded["train"]
  test_x, test_y = loaded["test"]
  assert train_x.shape == (60000, 28, 28)
  assert test_x.shape == (10000, 28, 28)
  assert train_x.dtype == test_x.dtype == np.uint8
  assert train_y.dtype == test_y.dtype == np.int32
  np.testing.assert_array_equal(np.bincount(train_y), np.full(10, 6000))
  np.testing.assert_array_equal(np.bincount(test_y), np.full(10, 1000))
  # Same order and content as the IDX files.
  idx_x, idx_y = fm.read_idx_split(DEBIAN_DIR, "test")
  np.testing.assert_array_equal(test_x, idx_x)
  np.testing.assert_array_equal(test_y, idx_y)
  assert len(fm.CLASS_NAMES) == 10


def test_runs_started_side_by_side_prepare_the_dataset_once(tmp_path):
  """Three processes on a fresh data folder: one prepares, the others wait and read the
  same arrays (before the lock, all but the first failed renaming into the folder)."""
  import subprocess
  import sys
  code = ("import hashlib, sys; from fedbbpt_jax.data.fashion_mnist import load_fashion_mnist; "
          "d = load_fashion_mnist(data_dir=sys.argv[1]); "
          "print(hashlib.sha256(d['train'][0].tobytes() + d['test'][1].tobytes()).hexdigest())")
  procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for _ in range(3)]
  outs = [p.communicate(timeout=300) for p in procs]
  assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in outs]
  digests = {out.strip().splitlines()[-1] for out, _ in outs}
  assert len(digests) == 1 and len(digests.pop()) == 64
  assert sum("downloaded and prepared" in out + err for out, err in outs) == 1
