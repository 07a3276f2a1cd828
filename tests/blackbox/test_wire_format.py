"""The .npy wire format: byte order, refused bodies."""

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
