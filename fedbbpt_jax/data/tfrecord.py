"""Random access to TFRecord files without TensorFlow (TFDS' default file format).

A TFRecord file is a sequence of records, each ``uint64 length | uint32 masked CRC of
the length | data | uint32 masked CRC of the data`` (little-endian). Opening the files
reads only the 12-byte headers (one seek per record) to index where each record's data
starts; ``get`` then reads the wanted records. The CRCs are not checked (a damaged
file shows up when its protos or images fail to parse).
"""

from __future__ import annotations

import os
import struct
from typing import Sequence

import numpy as np

_HEADER = struct.Struct("<QI")  # length, masked CRC of the length
_FOOTER_BYTES = 4  # masked CRC of the data


class TfRecordFiles:
  """The records of ``paths``, concatenated in order, indexed from 0."""

  def __init__(self, paths: Sequence[str | os.PathLike[str]]):
    self.paths = [os.fspath(p) for p in paths]
    files, offsets, lengths = [], [], []
    for i, path in enumerate(self.paths):
      size = os.path.getsize(path)
      with open(path, "rb") as f:
        position = 0
        while position < size:
          header = f.read(_HEADER.size)
          if len(header) != _HEADER.size:
            raise ValueError(f"{path}: truncated record header at byte {position}")
          length, _ = _HEADER.unpack(header)
          data_start = position + _HEADER.size
          position = data_start + length + _FOOTER_BYTES
          if position > size:
            raise ValueError(f"{path}: record at byte {data_start - _HEADER.size} claims "
                             f"{length} bytes, past the end of the file ({size} bytes)")
          files.append(i)
          offsets.append(data_start)
          lengths.append(length)
          f.seek(position)
    self._file = np.asarray(files, np.int32)
    self._offset = np.asarray(offsets, np.int64)
    self._length = np.asarray(lengths, np.int64)

  def __len__(self) -> int:
    return int(self._offset.size)

  def get(self, indices: Sequence[int]) -> list[bytes]:
    """The data of records ``indices``, in that order."""
    indices = np.asarray(indices, np.int64)
    out: list[bytes] = [b""] * indices.size
    order = np.lexsort((self._offset[indices], self._file[indices]))  # sequential reads
    handle, current = None, -1
    try:
      for j in order:
        i = indices[j]
        if self._file[i] != current:
          if handle is not None:
            handle.close()
          current = int(self._file[i])
          handle = open(self.paths[current], "rb")
        handle.seek(int(self._offset[i]))
        out[j] = handle.read(int(self._length[i]))
    finally:
      if handle is not None:
        handle.close()
    return out
