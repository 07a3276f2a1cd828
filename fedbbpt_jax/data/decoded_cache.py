"""A disk cache of arrays built once (decoded images, label columns) as ``.npy`` memmaps.

An entry is named by the SHA-256 of what it is built from (``identity``: image paths or
record numbers, the output size, ...), so a 16-shot set is decoded once and every later
run with the same draw maps it from disk (read-only, paged in on use). The entry is
written to a temporary file and renamed when complete, under a lock, so runs started
side by side build it once and an interrupted build leaves nothing behind.

Images changed in place under the same names are not noticed: delete the cache folder
(``data.cache_dir``) after editing a dataset's files.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from typing import Any, Callable, Final, Sequence

import numpy as np

DATA_DIR_ENV_VAR: Final[str] = "FEDBBPT_DATA_DIR"
DEFAULT_CACHE_DIR: Final[str] = "~/.cache/fedbbpt_jax/decoded"


def default_cache_dir() -> str:
  """``$FEDBBPT_DATA_DIR/decoded`` when that is set, else ``~/.cache/fedbbpt_jax/decoded``."""
  base = os.environ.get(DATA_DIR_ENV_VAR)
  return os.path.expanduser(os.path.join(base, "decoded") if base else DEFAULT_CACHE_DIR)


def cache_key(identity: Sequence[str]) -> str:
  """The entry name of ``identity`` (hex SHA-256 of its lines)."""
  digest = hashlib.sha256()
  for line in identity:
    digest.update(line.encode("utf-8", "surrogateescape"))
    digest.update(b"\n")
  return digest.hexdigest()


def cached_array(cache_dir: str | None, identity: Sequence[str], shape: tuple[int, ...],
                 dtype: Any, build: Callable[[np.ndarray], Any],
                 describe: dict[str, Any] | None = None) -> np.ndarray:
  """The array built by ``build(out)``, from the cache when an entry for ``identity`` exists.

  Args:
    cache_dir: the cache folder (created if absent); ``None`` builds in memory, no cache.
      Each entry keeps its ``<key>.lock`` file (empty) beside it.
    identity: lines that determine the content (they name the entry).
    shape: the array's shape.
    dtype: the array's dtype.
    build: fills ``out`` (a writable array of ``shape`` and ``dtype``) in place.
    describe: written beside the entry as ``<key>.json`` for people browsing the cache.

  Returns:
    The array: a read-only memmap of the entry, or an in-memory array without cache.
  """
  dtype = np.dtype(dtype)
  if cache_dir is None or not np.prod(shape):  # an empty file cannot be memory-mapped
    out = np.empty(shape, dtype)
    build(out)
    return out
  cache_dir = os.path.expanduser(cache_dir)
  os.makedirs(cache_dir, exist_ok=True)
  key = cache_key([*identity, f"shape={tuple(shape)}", f"dtype={dtype.str}"])
  path = os.path.join(cache_dir, key + ".npy")
  if not os.path.exists(path):
    with open(os.path.join(cache_dir, key + ".lock"), "w") as lock:
      fcntl.flock(lock, fcntl.LOCK_EX)
      if not os.path.exists(path):
        partial = os.path.join(cache_dir, key + ".partial.npy")
        out = np.lib.format.open_memmap(partial, mode="w+", dtype=dtype, shape=tuple(shape))
        try:
          build(out)
          out.flush()
        except BaseException:
          del out
          os.remove(partial)
          raise
        del out
        if describe is not None:
          with open(os.path.join(cache_dir, key + ".json"), "w") as f:
            json.dump(describe, f, indent=1, default=str)
        os.replace(partial, path)
  loaded = np.load(path, mmap_mode="r")
  if loaded.shape != tuple(shape) or loaded.dtype != dtype:
    raise ValueError(f"cache entry {path} holds {loaded.dtype} {loaded.shape}, expected "
                     f"{dtype} {tuple(shape)}: delete it and run again")
  return loaded
