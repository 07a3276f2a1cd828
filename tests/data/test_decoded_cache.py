"""The decoded-array cache: built once per identity, memory-mapped after, nothing half-written."""

import json
import os

import numpy as np
import pytest

from fedbbpt_jax.data.decoded_cache import cache_key, cached_array, default_cache_dir


def _filler(calls):
  def build(out):
    calls.append(out.shape)
    out[...] = np.arange(out.size, dtype=out.dtype).reshape(out.shape)
  return build


def test_built_once_then_read_back_as_a_read_only_memmap(tmp_path):
  calls = []
  first = cached_array(str(tmp_path), ["a", "b"], (2, 3), np.uint8, _filler(calls),
                       describe={"what": "test"})
  again = cached_array(str(tmp_path), ["a", "b"], (2, 3), np.uint8, _filler(calls))
  assert calls == [(2, 3)]  # the second call read the entry
  assert isinstance(again, np.memmap) and not again.flags.writeable
  np.testing.assert_array_equal(again, [[0, 1, 2], [3, 4, 5]])
  np.testing.assert_array_equal(first, again)
  key = cache_key(["a", "b", "shape=(2, 3)", "dtype=|u1"])
  assert sorted(os.listdir(tmp_path)) == [f"{key}.json", f"{key}.lock", f"{key}.npy"]
  assert json.loads((tmp_path / f"{key}.json").read_text()) == {"what": "test"}


def test_another_identity_or_shape_is_another_entry_and_no_cache_dir_builds_in_memory(tmp_path):
  calls = []
  cached_array(str(tmp_path), ["a"], (2,), np.int64, _filler(calls))
  cached_array(str(tmp_path), ["b"], (2,), np.int64, _filler(calls))
  cached_array(str(tmp_path), ["a"], (3,), np.int64, _filler(calls))
  plain = cached_array(None, ["a"], (2,), np.int64, _filler(calls))
  assert calls == [(2,), (2,), (3,), (2,)]
  assert type(plain) is np.ndarray and plain.flags.writeable
  assert len([f for f in os.listdir(tmp_path) if f.endswith(".npy")]) == 3


def test_a_failed_build_leaves_no_entry(tmp_path):
  def fail(out):
    out[0] = 1
    raise RuntimeError("decode failed")

  with pytest.raises(RuntimeError, match="decode failed"):
    cached_array(str(tmp_path), ["x"], (4,), np.uint8, fail)
  assert not [f for f in os.listdir(tmp_path) if f.endswith(".npy")]
  calls = []
  np.testing.assert_array_equal(cached_array(str(tmp_path), ["x"], (4,), np.uint8,
                                             _filler(calls)), [0, 1, 2, 3])
  assert calls == [(4,)]


def test_default_cache_dir_follows_fedbbpt_data_dir(monkeypatch):
  monkeypatch.setenv("FEDBBPT_DATA_DIR", "/srv/data")
  assert default_cache_dir() == "/srv/data/decoded"
  monkeypatch.delenv("FEDBBPT_DATA_DIR")
  assert default_cache_dir() == os.path.expanduser("~/.cache/fedbbpt_jax/decoded")
