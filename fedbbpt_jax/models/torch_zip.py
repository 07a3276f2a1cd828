"""Reader for PyTorch's zip ``torch.save`` format (the default since torch 1.6), no torch.

A zip-format file (e.g. a Hugging Face ``pytorch_model.bin``) is an uncompressed zip
archive whose entries sit under one folder ``<name>/``:

* ``<name>/data.pkl``: the pickled object (here a state dict). Tensors are calls to
  ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` and storages
  persistent ids ``('storage', storage_type, key, location, numel)``, exactly as in the
  legacy format (``torch_legacy``), whose restricted unpickler is reused: loading a file
  cannot execute arbitrary code;
* ``<name>/data/<key>``: the raw bytes of storage ``key``;
* ``<name>/byteorder``: ``little`` or ``big`` (absent in old files: little).

``load_torch_state_dict`` reads either format.

Example:
    >>> state = load_torch_state_dict("/models/vit-mae-base/pytorch_model.bin")
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile

import numpy as np

from fedbbpt_jax.models.torch_legacy import (
    _LegacyUnpickler,
    _materialise,
    _StorageRef,
    _TensorRef,
    load_legacy_torch_state_dict,
)

__all__ = ["load_torch_state_dict", "load_torch_zip_state_dict"]


def load_torch_zip_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
  """Reads a state dict saved with torch's zip serialization.

  Args:
    path: Path to the file (``pytorch_model.bin``, ``*.pt``, ``*.pth``).

  Returns:
    An ordered mapping from tensor name to a contiguous numpy array in native byte order.

  Raises:
    ValueError: If the file is not a zip-format torch file, is big-endian, holds
      something other than a dict of tensors, or a tensor's storage is missing or short.
  """
  path = os.fspath(path)
  try:
    archive = zipfile.ZipFile(path)
  except zipfile.BadZipFile as err:
    raise ValueError(f"{path}: not a zip-format torch file ({err})") from err
  with archive:
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
      raise ValueError(f"{path}: a zip-format torch file holds one <name>/data.pkl; "
                       f"found {pickles}")
    root = pickles[0][:-len("data.pkl")]
    if f"{root}byteorder" in names and archive.read(f"{root}byteorder").strip() != b"little":
      raise ValueError(f"{path}: big-endian checkpoints are not supported")
    try:
      obj = _LegacyUnpickler(io.BytesIO(archive.read(pickles[0]))).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as err:
      raise ValueError(f"{path}: cannot read {pickles[0]} (corrupted file, or an object "
                       f"other than a state dict of tensors): {err}") from err
    if not isinstance(obj, dict):
      raise ValueError(f"{path}: top-level object is a {type(obj).__name__}, not a dict")
    storages: dict[str, np.ndarray] = {}
    for name, value in obj.items():
      if not isinstance(value, _TensorRef):
        raise ValueError(f"{path}: entry {name!r} is not a tensor")
      ref: _StorageRef = value.storage
      if ref.key in storages:
        continue
      entry = f"{root}data/{ref.key}"
      if entry not in names:
        raise ValueError(f"{path}: no data for storage {ref.key!r} of tensor {name!r}")
      raw = archive.read(entry)
      if len(raw) < ref.numel * ref.dtype.itemsize:
        raise ValueError(f"{path}: storage {ref.key!r} holds {len(raw)} bytes, expected "
                         f"{ref.numel * ref.dtype.itemsize}")
      storages[ref.key] = np.frombuffer(raw, dtype=ref.dtype, count=ref.numel).astype(
          ref.dtype.newbyteorder("="), copy=False)
  state: dict[str, np.ndarray] = collections.OrderedDict()
  for name, value in obj.items():
    state[str(name)] = _materialise(value, storages, path)
  return state


def load_torch_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
  """Reads a ``torch.save``-d state dict in either format (zip, or legacy pre-1.6)."""
  if zipfile.is_zipfile(path):
    return load_torch_zip_state_dict(path)
  return load_legacy_torch_state_dict(path)
