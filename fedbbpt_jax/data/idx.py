"""Reader for the IDX binary format used by (Fashion-)MNIST.

An IDX file starts with a 4-byte magic number: two zero bytes, one byte naming
the element type and one byte giving the number of dimensions. The dimension
sizes follow as big-endian uint32 values, then the data in row-major order with
big-endian elements. Files may be gzip-compressed.
"""

from __future__ import annotations

import gzip
import os
from typing import Final

import numpy as np

# Element type byte -> big-endian numpy dtype.
_IDX_DTYPES: Final[dict[int, np.dtype]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC: Final[bytes] = b"\x1f\x8b"


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
  """Returns the content of ``path``, gunzipped if it is gzip data."""
  with open(path, "rb") as f:
    is_gzip = f.read(2) == _GZIP_MAGIC
    f.seek(0)
    if is_gzip:
      with gzip.GzipFile(fileobj=f) as gz:
        return gz.read()
    return f.read()


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
  """Reads an IDX file, optionally gzip-compressed, into a numpy array.

  Compression is detected from the content, not the file name.

  Args:
    path: Path of the IDX file, e.g. ``train-images-idx3-ubyte.gz``.

  Returns:
    A writable array with the declared shape, in native byte order
    (``uint8`` for the MNIST image and label files).

  Raises:
    FileNotFoundError: If ``path`` does not exist.
    ValueError: If the file is not valid gzip, its magic number is wrong,
      or its size does not match the declared dimensions. The message
      names the file.
  """
  name = os.fspath(path)
  try:
    raw = _read_bytes(path)
  except FileNotFoundError:
    raise
  except (OSError, EOFError) as e:
    raise ValueError(f"{name}: cannot read IDX file: {e}") from e

  if len(raw) < 4:
    raise ValueError(
        f"{name}: {len(raw)} bytes is too short for an IDX header."
    )
  zero0, zero1, type_code, ndim = raw[:4]
  if zero0 != 0 or zero1 != 0 or type_code not in _IDX_DTYPES:
    known = ", ".join(f"0x{t:02x}" for t in _IDX_DTYPES)
    raise ValueError(
        f"{name}: bad IDX magic number 0x{raw[:4].hex()}; expected "
        f"0x0000TTNN with element type TT in {{{known}}}."
    )
  if ndim == 0:
    raise ValueError(f"{name}: IDX header declares 0 dimensions.")

  header_size = 4 + 4 * ndim
  if len(raw) < header_size:
    raise ValueError(
        f"{name}: truncated IDX header; {ndim} dimensions need "
        f"{header_size} bytes but the file has {len(raw)}."
    )
  shape = tuple(
      int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4)
  )
  dtype = _IDX_DTYPES[type_code]
  expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  payload = len(raw) - header_size
  if payload != expected:
    raise ValueError(
        f"{name}: IDX dimensions {shape} of dtype {dtype.str} need "
        f"{expected} data bytes but the file has {payload}."
    )
  data = np.frombuffer(raw, dtype=dtype, offset=header_size)
  return data.astype(dtype.newbyteorder("="), copy=True).reshape(shape)
