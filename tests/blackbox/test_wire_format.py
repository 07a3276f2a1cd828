"""The .npy wire format: byte order, refused bodies."""

import sys
import threading

import numpy as np
import pytest

from fedbbpt_jax.blackbox.wire import WireFormatError, decode_array, encode_array, from_wire


@pytest.mark.parametrize("dtype", [">f4", ">i4", "<f4", "|u1"])
def test_any_byte_order_decodes_to_the_same_native_values(dtype):
  values = np.asarray([[0.0, 1.0, 7.0], [3.0, 255.0, 2.0]]).astype(dtype)
  out = decode_array(encode_array(values))
  assert out.dtype.isnative and out.dtype.name == np.dtype(dtype).name
  np.testing.assert_array_equal(out, [[0, 1, 7], [3, 255, 2]])
  np.testing.assert_array_equal(from_wire(out) * (255 if dtype == "|u1" else 1),
                                [[0, 1, 7], [3, 255, 2]])


def test_trailing_bytes_are_refused():
  with pytest.raises(WireFormatError, match="3 bytes after the .npy array"):
    decode_array(encode_array(np.zeros(2, np.float32)) + b"abc")


def test_threads_decoding_at_once_all_succeed():
  # A tiny thread switch interval makes the CPython 3.11 AST-constructor race in
  # numpy's header parsing show within a few hundred decodes (measured without
  # the lock: 7 of 8 threads failed with "recursion depth mismatch").
  data = encode_array(np.arange(48, dtype=np.float32).reshape(4, 2, 2, 3))
  failures = []

  def decode_many():
    for _ in range(2000):
      try:
        out = decode_array(data)
      except WireFormatError as e:
        failures.append(e)
        return
      if out[-1, -1, -1, -1] != 47.0:
        failures.append(out)
        return

  interval = sys.getswitchinterval()
  sys.setswitchinterval(1e-6)
  try:
    threads = [threading.Thread(target=decode_many) for _ in range(8)]
    for thread in threads:
      thread.start()
    for thread in threads:
      thread.join()
  finally:
    sys.setswitchinterval(interval)
  assert failures == []
