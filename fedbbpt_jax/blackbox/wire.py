"""The binary wire format shared by the model service and ``RemoteBlackBox``.

Both request and response bodies are one ``.npy`` file (``numpy.save`` bytes,
Content-Type ``application/x-npy``): a short text header with dtype and shape,
then the raw data (little-endian as numpy writes it on every common machine; a
big-endian body is read too, converted to native order). It is exact, compact
(4 bytes per float32, 1 per uint8 pixel) and parsed without pickle.

Inputs travel as

* ``float32``: pixels in [0, 1] as they are (exact; the default; the service
  refuses values outside the range rather than clip them), or
* ``uint8``: pixels quantised to ``round(x * 255)`` by the client and mapped back
  to ``q / 255`` by the server, as an 8-bit image API would see them. A change of
  a pixel smaller than ``0.5 / 255`` (about 0.002) can vanish on this wire.
* ``int32``: token ids of a text model (exact; the client may hold them as floats,
  which represent every id below 2**24 exactly).

This module lives in the black-box layer (not in ``serve``) so that the client
never imports the server package; the server imports it from here.
"""

from __future__ import annotations

import io
import threading

import numpy as np

NPY_CONTENT_TYPE = "application/x-npy"
WIRE_DTYPES = ("float32", "int32", "uint8")
PIXEL_LEVELS = 255
NPY_MAGIC = b"\x93NUMPY"


# numpy parses the ``.npy`` header with ``ast.literal_eval``. On CPython 3.11 the
# AST constructor keeps its recursion-depth bookkeeping per interpreter, not per
# thread, so two threads parsing at once can fail with "SystemError: AST
# constructor recursion depth mismatch". The client decodes
# responses on several threads and the service decodes requests on a thread
# pool, so every decode in this process takes this lock.
_HEADER_PARSE_LOCK = threading.Lock()


class WireFormatError(ValueError):
  """A body is not a valid ``.npy`` array of an accepted dtype."""


def encode_array(array: np.ndarray) -> bytes:
  """Returns the ``.npy`` bytes of ``array`` (C order, no pickle)."""
  buffer = io.BytesIO()
  np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
  return buffer.getvalue()


def decode_array(data: bytes) -> np.ndarray:
  """Parses ``.npy`` bytes.

  Returns:
    The array in native byte order (a big-endian ``>f4`` body is a valid float32
    array: it is converted, not refused).

  Raises:
    WireFormatError: the bytes are not one complete ``.npy`` array (object arrays,
      pickles, truncated data and trailing bytes are all refused).
  """
  if not data.startswith(NPY_MAGIC):
    raise WireFormatError("body is not a .npy array (it does not start with the "
                          "b'\\x93NUMPY' magic of numpy.save)")
  buffer = io.BytesIO(data)
  try:
    with _HEADER_PARSE_LOCK:
      array = np.lib.format.read_array(buffer, allow_pickle=False)
  except Exception as e:  # numpy raises ValueError, EOFError, OSError, ... on bad bytes
    raise WireFormatError(f"body is not a valid .npy array ({type(e).__name__}: {e})") from None
  if buffer.tell() != len(data):
    raise WireFormatError(f"body has {len(data) - buffer.tell()} bytes after the .npy array")
  if not array.dtype.isnative:
    array = array.astype(array.dtype.newbyteorder("="))
  return array


def quantize_pixels(pixels: np.ndarray) -> np.ndarray:
  """Maps pixels in [0, 1] to uint8 levels ``round(x * 255)`` (values outside are clipped)."""
  scaled = np.clip(np.asarray(pixels, np.float32), 0.0, 1.0) * np.float32(PIXEL_LEVELS)
  return np.rint(scaled).astype(np.uint8)


def dequantize_pixels(levels: np.ndarray) -> np.ndarray:
  """Maps uint8 levels back to float32 pixels ``q / 255``."""
  return np.asarray(levels, np.uint8).astype(np.float32) / np.float32(PIXEL_LEVELS)


def to_wire(pixels: np.ndarray, wire_dtype: str) -> np.ndarray:
  """Returns the array a client sends for float pixels in [0, 1] (or token ids, ``int32``)."""
  if wire_dtype == "float32":
    return np.asarray(pixels, np.float32)
  if wire_dtype == "int32":
    return np.rint(np.asarray(pixels)).astype(np.int32)
  if wire_dtype == "uint8":
    return quantize_pixels(pixels)
  raise ValueError(f"wire dtype {wire_dtype!r} is not one of {list(WIRE_DTYPES)}")


def from_wire(array: np.ndarray) -> np.ndarray:
  """Returns model inputs for a received array (uint8 levels are divided by 255; int32
  token ids and float32 pixels pass as they are)."""
  if array.dtype == np.uint8:
    return dequantize_pixels(array)
  if array.dtype in (np.float32, np.int32):
    return array
  raise WireFormatError(f"input dtype {array.dtype} is not one of {list(WIRE_DTYPES)}")
